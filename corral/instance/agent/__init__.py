"""The host side of corral-agent, the agent inside Corral's VMs (corral/vmagent/): AgentClient and
its errors. The protocol: docs/vm-agent.md."""
from corral.instance.agent.client import AgentClient
from corral.instance.agent.errors import AgentError, AgentFileError, AgentNotRunning

__all__ = ["AgentClient", "AgentError", "AgentFileError", "AgentNotRunning"]
