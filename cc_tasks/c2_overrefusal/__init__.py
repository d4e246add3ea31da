"""The over-refusal lm-eval task folder (method section 2.9): YAML configs, README, prompts.

The task class in :mod:`.task`, the hooks the YAML names and the judge filter in
:mod:`.utils`, the prompts (the project's file or XSTest) in :mod:`.prompts`.
lm-eval finds it under the include path ``python -m cc_tasks`` prints.
"""
