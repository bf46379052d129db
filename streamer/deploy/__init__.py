"""Deployment tooling: blue-green job runs on EMR on EKS, switched through the handoff
lease (:mod:`streamer.handoff.lease`)."""
