"""A city on several machines (docs/DEPLOY.md): the roles beside ``vigil run``.

- ``worker``: ``CameraWorker``, a group of cameras analysed under ``leases``, its live picture served on the bus
  by ``live_publisher`` (``live_wire``) and its recordings by ``segments``;
- ``remote_live``: the command centre's ``LiveState`` fed from the bus; ``roles``: ``vigil worker`` / ``vigil api``;
- ``ray_cluster`` and ``commands``: ``vigil cluster up|status``, the workers as Ray actors.
"""
