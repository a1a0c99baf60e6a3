"""Tests of the serverless API: handlers, logic, events, OpenAPI and template."""
