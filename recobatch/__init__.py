"""recobatch: the plain library behind the function app (no ``azure.functions`` import here).

One module per noun: settings, errors, naming, jobspec, batchfile (input formats and
validation), chunking (split and merge), limits (on untrusted JSON), jsonstream (the streaming
JSON scanner), prepare, storage, client (Recommendations v4), markers.
"""
