package dev.isthmus.cli;

import dev.isthmus.api.policy.PolicyValidator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code isthmus policy validate DIR}: the controller's validation of a policy commit, offline. */
@Command(name = "policy", description = "Global traffic policy (GitOps).", subcommands = PolicyCommand.Validate.class)
final class PolicyCommand implements Runnable {

    @Override
    public void run() {
        System.err.println("isthmus policy: say what to do: isthmus policy validate DIR");
    }

    @Command(name = "validate", description = {"Validates every *.yaml/*.yml under DIR as one commit, the way the controller does.",
            "Prints each problem as file:line: field: message; exits 1 if any is an error (warnings alone exit 0)."})
    static final class Validate implements Callable<Integer> {

        @Parameters(paramLabel = "DIR", description = "A checkout of the policy repository (or the policy path within it).")
        Path dir;

        @Override
        public Integer call() throws Exception {
            if (!Files.isDirectory(dir)) {
                System.err.println("isthmus policy validate: " + dir + " is not a directory");
                return 2;
            }
            var result = PolicyValidator.validateDirectory(dir, null);
            result.problems().forEach(p -> (p.warning() ? System.out : System.err).println(p));
            if (!result.ok()) {
                System.err.printf("%d error(s); the controller would refuse this commit and keep the policy it runs.%n", result.errors().size());
                return 1;
            }
            var b = result.bundle();
            System.out.printf("valid: %d TrafficPolicy, %d FailoverPolicy, %d AuthorizationPolicy, %d MeshPolicy%s%n", b.traffic().size(),
                    b.failover().size(), b.authorization().size(), b.mesh().size(),
                    result.problems().isEmpty() ? "" : " (" + result.problems().size() + " warning(s))");
            return 0;
        }
    }
}
