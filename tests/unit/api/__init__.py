"""Tests of the serverless API (issue 2): handlers, logic, events, OpenAPI and template."""
