# RabbitMQ from Debian's package (3.10 in bookworm) on the offline base, for
# machines where no registry answers; elsewhere scripts/images.sh uses the
# standard rabbitmq:3.10 image. The rig mounts its config (rig/transports/rabbitmq.py)
# at /etc/celery-rig/rabbitmq and names it in RABBITMQ_CONFIG_FILE.
ARG BASE=celery-rig/base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
CMD ["rabbitmq-server"]
