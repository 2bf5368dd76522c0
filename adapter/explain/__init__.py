"""Front-ends that explain what the adapter serves and what an HPA does with it (issue 12).

``dryrun``      ``accel-adapter explain``: one metric request traced against Prometheus, without a cluster
``kubectl``     ``kubectl accel explain hpa/NAME``: every metric of an HPA, through the cluster's API
``autoscaler``  one HPA sync replayed (``adapter.hpa``) from its spec, status, pods and the served values
``requests``    the requests the HPA controller makes per metric, and their explain twins
``render``      the readable report (and ``-o json|yaml``) for both

Every explanation comes from ``adapter.provider.explainer``, which runs the serving path itself.
"""
