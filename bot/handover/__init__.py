"""Live handover to human agents: the state machine, the queue, routing and business hours."""
