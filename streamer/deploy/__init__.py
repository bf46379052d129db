"""Deployment: the blue-green handoff lease, and EMR on EKS orchestration around it."""
