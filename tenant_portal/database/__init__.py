"""PostgreSQL whose URL is read again from its file each time a connection opens.

The portal's ``DATABASE_URL`` may come from a file (``DATABASE_URL_FILE``, a mounted Secret).
When the password in it is rotated (on aws, RDS rotates its master user's password itself and
the External Secrets Operator rewrites the Secret, which the kubelet rewrites in the pod), the
processes already running would keep the password they started with, and each new connection
would be refused. With this engine a new connection reads the file first; the connections open
already are not disturbed (PostgreSQL keeps a session when its role's password changes).
"""
