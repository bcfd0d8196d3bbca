package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * A state the controller's cluster is put in for a while and that ends by itself ({@code --for}),
 * or now ({@code --end}): {@link DrainCommand}, {@link IsolateCommand}. Works against any controller
 * (a Kubernetes one through a port-forward).
 */
abstract class HoldCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Option(names = "--for", defaultValue = "10m", description = "How long, e.g. 90s, 10m, 2h (1s to 24h; default ${DEFAULT-VALUE}).")
    String duration;

    @Option(names = "--end", description = "End it now.")
    boolean end;

    /** The controller's resource, e.g. {@code /api/v1/federation/drain}. */
    abstract String path();

    /** The command's name in messages. */
    abstract String name();

    @Override
    public Integer call() {
        try {
            var view = end ? api.delete(path())
                    : api.post(path(), "{\"duration\":" + dev.isthmus.cli.local.ControllerClient.quote(duration) + "}");
            FederationView.print(view, api.json());
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus " + name() + ": " + e.getMessage());
            return 1;
        }
    }
}
