"""A test plugin found through the ``trioredis`` entry-point group: adds ENTRYPOINT.ECHO."""

from trioredis import command, hookimpl


def entrypoint_echo(ctx, argv):
    return argv[1]


@hookimpl
def trioredis_register_commands(registry):
    registry.add(command("entrypoint.echo", 2, "readonly fast", entrypoint_echo,
                         group="testplugin", summary="Echoes its argument"))
