package dev.isthmus.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code isthmus} command. */
@Command(name = "isthmus", mixinStandardHelpOptions = true, version = "isthmus 0.1.0",
        description = "Isthmus: a federated multi-cluster service mesh.",
        subcommands = {UpCommand.class, DownCommand.class, StatusCommand.class, LogsCommand.class, ClustersCommand.class, ServicesCommand.class, TokenCommand.class, JoinCommand.class,
                LeaveCommand.class, EvictCommand.class, TrustCommand.class, PolicyCommand.class, LoadCommand.class, DrillCommand.class, DrainCommand.class, IsolateCommand.class,
                CommandLine.HelpCommand.class})
public final class IsthmusCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new IsthmusCommand()).execute(args));
    }
}
