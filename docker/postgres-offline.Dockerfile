# PostgreSQL from Debian's package on the offline base, behaving like the
# official image for what docker-compose.yml uses: POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, data in /var/lib/postgresql/data, and a
# `postgres -c ...` command.
ARG BASE=celery-rig/base:bookworm
FROM ${BASE}
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY docker/postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# uid and gid 999 as in the official image, so the tmpfs options in
# docker-compose.yml fit both.
RUN groupmod -g 999 postgres && usermod -u 999 -g 999 postgres \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 755 /usr/local/bin/docker-entrypoint.sh
USER postgres
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
