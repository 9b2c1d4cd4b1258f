"""A test plugin loaded by a ``loadplugin trioredis_loadme`` config line: adds LOADPLUGIN.ECHO."""

from trioredis import command, hookimpl


def loadplugin_echo(ctx, argv):
    return argv[1]


@hookimpl
def trioredis_register_commands(registry):
    registry.add(command("loadplugin.echo", 2, "readonly fast", loadplugin_echo,
                         group="testplugin", summary="Echoes its argument"))
