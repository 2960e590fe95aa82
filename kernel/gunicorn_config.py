"""gunicorn's config file (kernel.production passes it with --config)."""


def post_worker_init(worker) -> None:
    """Move the start-up heap (about 195,000 objects: web3, numpy, SQLAlchemy,
    the app; see kernel.heap) out of the collector's reach. A full
    collection over it takes 30-130 ms, which showed up as the p99 of the
    verification benchmark."""
    from kernel.heap import freeze_startup_heap

    freeze_startup_heap()
