"""The C²-EVAL lm-eval task folder (YAML configs, README): the task class in :mod:`.task`,
the hooks the YAML names in :mod:`.utils`, the run options in :mod:`.options`, rows and
docs in :mod:`.rows`.

lm-eval finds it under the include path ``python -m cc_tasks`` prints (the package folder).
"""
