package dev.isthmus.cli;

import dev.isthmus.cli.local.LocalFederationException;
import java.nio.file.Files;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code isthmus logs COMPONENT}: the log of one process of the local federation. */
@Command(name = "logs", description = "Print the log of one component, e.g. `isthmus logs eu-west/federation-controller`.")
final class LogsCommand implements Callable<Integer> {

    @Mixin
    LocalOptions local;

    @Parameters(paramLabel = "COMPONENT", description = "region/name, or a name (the first region's is shown).")
    String component;

    @Option(names = {"-n", "--lines"}, defaultValue = "0", description = "Only the last N lines (default: all).")
    int lines;

    @Override
    public Integer call() throws Exception {
        try {
            var c = local.recorded().component(component);
            if (!Files.exists(c.logFile())) {
                System.err.println(c.id() + " has no log yet (" + c.logFile() + ")");
                return 1;
            }
            if (lines > 0) {
                System.out.println(dev.isthmus.cli.local.LocalFederation.tail(c.logFile(), lines));
            } else {
                try (var in = Files.newInputStream(c.logFile())) {
                    in.transferTo(System.out);
                }
            }
            return 0;
        } catch (LocalFederationException e) {
            System.err.println(e.getMessage());
            return 1;
        }
    }
}
