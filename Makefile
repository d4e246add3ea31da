# Convenience targets; every one is a single documented command.
.PHONY: demo demo-quick test lint

demo:        ## end-to-end CPU demo: eval -> C²-SYN -> DPO -> eval -> report (runs/demo)
	python demo/run_demo.py

demo-quick:  ## the same with a few rows and steps (smoke test)
	python demo/run_demo.py --quick --out runs/demo-quick

test:
	python -m pytest -q

lint:
	ruff check . && ruff format --check .
