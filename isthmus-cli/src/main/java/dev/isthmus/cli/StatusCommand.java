package dev.isthmus.cli;

import dev.isthmus.cli.local.LocalFederationException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code isthmus status}: every process of the local federation and its health. */
@Command(name = "status", description = "Show the processes of the local federation and their health.")
final class StatusCommand implements Callable<Integer> {

    @Mixin
    LocalOptions local;

    @Override
    public Integer call() throws Exception {
        try {
            var federation = local.recorded();
            var table = new Table("REGION", "COMPONENT", "PID", "STATE", "URL");
            int unhealthy = 0;
            for (var s : federation.status()) {
                String state = !s.alive() ? "stopped" : s.ready() ? "ready" : "not-ready";
                if (!s.ready()) {
                    unhealthy++;
                }
                table.row(s.component().region(), s.component().name(), s.pid().map(String::valueOf).orElse("-"), state, s.component().url());
            }
            System.out.print(table.render());
            return unhealthy == 0 ? 0 : 3;
        } catch (LocalFederationException e) {
            System.err.println(e.getMessage());
            return 3;
        }
    }
}
