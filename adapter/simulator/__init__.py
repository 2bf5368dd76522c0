"""A simulated accelerator fleet: dcgm-exporter, neuron-monitor, vLLM, Triton, TGI and
kube-state-metrics series with exact label layouts, values following a load curve, and the ground
truth each preset metric must return.

    fleet = Fleet.build(seed=1, curve=Curve("ramp", period=120))
    text = fleet.render(t)            # /metrics body at time t
    truth = fleet.truth(t)            # truth.custom["nvidia_gpu_utilization_percent"][(ns, pod)]
"""

from adapter.simulator.curves import Curve
from adapter.simulator.fleet import Fleet
from adapter.simulator.truth import Truth

__all__ = ["Curve", "Fleet", "Truth"]
