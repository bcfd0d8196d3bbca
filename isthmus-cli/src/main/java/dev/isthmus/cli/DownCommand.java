package dev.isthmus.cli;

import dev.isthmus.cli.local.LocalFederationException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code isthmus down}: stops every process the last {@code up} started, and nothing else. */
@Command(name = "down", description = "Stop every process of the local federation (only those it started).")
final class DownCommand implements Callable<Integer> {

    @Mixin
    LocalOptions local;

    @Override
    public Integer call() throws Exception {
        try {
            int stopped = local.recorded().stop();
            System.out.println("stopped " + stopped + " processes");
            return 0;
        } catch (LocalFederationException e) {
            System.out.println(e.getMessage());
            return 0;
        }
    }
}
