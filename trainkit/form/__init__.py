"""`trainkit form`: the platform's web form for an architecture, served locally.

The platform's users never see config.jsonschema, only the form its frontend renders from it;
this package serves that same form (the rjsf bundle built from `frontend/` into `static/`) so
template authors see labels, enums, conditional fields and validation messages before they
upload, and save the values as the train_config.json / export_config.json `trainkit run` takes.
"""
