"""Inference backends behind one interface (`base.Backend`); the model-format table in
`lgcnet_deploy.core.formats` picks one by file suffix."""
