"""Transfer back ends behind one ``Target`` protocol: Jet, Integration Manager, JetStream.

With ``config/``, the only place a target kind is spelled (see :mod:`.spec`)."""
