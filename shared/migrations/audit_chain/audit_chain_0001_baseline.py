"""The hash chain over the schema's event store (`shared.audit_chain`); events stored before it join it."""

from typing import Any

from yoyo import step

from shared.audit_chain import chain_ddl

# eventsourcing names the table after the application: `<name>_events`, the schema's only one so named.
EVENT_STORE = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE '%\\_events'"


def install(connection: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("SELECT current_schema()")
    (schema,) = cursor.fetchone()
    cursor.execute(EVENT_STORE)
    ((table,),) = cursor.fetchall()
    cursor.execute(chain_ddl(schema, table))


steps = [step(install)]
