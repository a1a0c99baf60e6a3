"""Lambda-side code of textclf: API schemas, logic and thin powertools handlers.

Kept free of torch/transformers so the Lambda packages stay small.
"""
