"""Blue-green handoff at run time: the lease two service instances contend for, and the
warm standby, takeover and drain built on it."""
