"""Pure functions, no I/O: rules -> metric names, selectors -> PromQL matchers, templates, escaping."""
