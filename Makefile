# Convenience targets; every one is a single documented command.
.PHONY: demo demo-quick demo-choices test lint

demo:        ## end-to-end CPU demo: eval -> C²-SYN -> DPO -> eval -> report (runs/demo; demo/README.md)
	python demo/run_demo.py

demo-quick:  ## the same with a few rows and steps (smoke test; CI runs it through tests/test_demo.py)
	python demo/run_demo.py --quick --out runs/demo-quick

demo-choices:  ## a pilot: the synthesis choices (system prompt, gate judge/action) on 24 requests
	python -m experiments.synth_choices --requests 24 --out runs/synth_choices

test:
	python -m pytest -q

lint:
	ruff check . && ruff format --check .
