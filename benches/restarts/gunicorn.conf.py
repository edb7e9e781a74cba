"""gunicorn settings for the restart benchmark: a log line once a worker serves.

gunicorn logs "Booting worker" right after the fork, before the worker has loaded the
application and entered its accept loop; a readiness check on that line lets the
keeper stop the old generation while no new worker accepts yet. post_worker_init
runs after the application is loaded, right before the accept loop.
"""


def post_worker_init(worker):
    worker.log.info("Worker serving (pid: %s)", worker.pid)
