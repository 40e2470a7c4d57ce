"""Files: MLIP's ``.cfg`` (:mod:`.cfg`) and ``.mtp``/``.almtp`` (:mod:`.mtp`), H5MD trajectories (:mod:`.h5md`),
CSV thermo logs (:mod:`.thermo`), MD checkpoints (:mod:`.checkpoint`), the append-only HDF5 training store
(:mod:`.store`), TOML run files (:mod:`.toml`), converters (:mod:`.convert`) and atomic writes (:mod:`.atomic`)."""
