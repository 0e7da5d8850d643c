"""vCPU backends behind one register-transport protocol: the simulated vCPU, and (in
``sdei_state.kvm``) the real one."""
