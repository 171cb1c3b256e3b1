"""When each vehicle heard of an event: the first setpoint it received after t_event."""

from __future__ import annotations

import numpy as np


def first_receipts(rec, t_event_ms: int) -> dict[str, np.ndarray] | None:
    """Per vehicle that received a setpoint sent at or after ``t_event_ms``: vehicle index, time sent by
    the aggregator, time received, setpoint (kW). None if the aggregator sent nothing."""
    sent = rec.table("setpoints")
    if sent is None:
        return None
    delivered = rec.table("delivered")
    if delivered is not None:
        keep = delivered["sent_ms"] >= t_event_ms
        vehicle, recv, sent_ms, kw = (delivered["vehicle"][keep], delivered["time_ms"][keep],
                                      delivered["sent_ms"][keep], delivered["kw"][keep])
    else:
        keep = sent["time_ms"] >= t_event_ms
        vehicle, recv, kw = sent["vehicle"][keep], sent["time_ms"][keep], sent["kw"][keep]
        sent_ms = recv
    order = np.lexsort((recv, vehicle))  # per vehicle, earliest receipt first
    vehicle, recv, sent_ms, kw = vehicle[order], recv[order], sent_ms[order], kw[order]
    vehicle, first = np.unique(vehicle, return_index=True)
    return {"vehicle": vehicle, "sent_ms": sent_ms[first], "recv_ms": recv[first], "kw": kw[first]}
