"""The rules file the explain tests serve: one custom (vLLM queue) and one external rule."""

RULES = """
rules:
- seriesQuery: '{__name__="vllm_num_requests_waiting",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^vllm_num_requests_(.*)$", as: "vllm_requests_${1}"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_depth",namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (model)'
"""
