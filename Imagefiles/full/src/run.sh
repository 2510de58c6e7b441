#!/bin/busybox sh
# Prints the configuration and the greeting, then serves /app/static.
cat /etc/full/full.conf /opt/greeting/greeting.txt
exec /bin/busybox httpd -f -p "${PORT:-8080}" -h /app/static
