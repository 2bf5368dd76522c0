.PHONY: demo test lint bench setup
setup:
	scripts/setup
demo:
	scripts/demo
test:
	scripts/test
lint:
	scripts/lint
bench:
	scripts/bench
