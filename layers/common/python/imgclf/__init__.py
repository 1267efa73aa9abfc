"""imgclf: the domain code every imgclf Lambda function shares (a Lambda layer)."""
