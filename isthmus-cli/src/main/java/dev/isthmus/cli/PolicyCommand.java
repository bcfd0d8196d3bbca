package dev.isthmus.cli;

import dev.isthmus.api.policy.PolicyValidator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code isthmus policy validate DIR}: the controller's validation of a policy commit, offline. */
@Command(name = "policy", description = "Global traffic policy (GitOps).", subcommands = {PolicyCommand.Validate.class, PolicyCommand.Status.class})
final class PolicyCommand implements Runnable {

    @Override
    public void run() {
        System.err.println("isthmus policy: say what to do: isthmus policy validate DIR, or isthmus policy status");
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

    @Command(name = "status", description = "The policy SHA every cluster runs, the last refused commit with its errors, and the Git watch.")
    static final class Status implements Callable<Integer> {

        @picocli.CommandLine.Mixin
        ControllerOptions api;

        @Override
        public Integer call() {
            try {
                var s = api.get("/api/v1/policy/status");
                if (api.json()) {
                    System.out.println(s.toPrettyString());
                    return 0;
                }
                System.out.printf("policy: %s (applied %s, from %s)%n", s.path("sha").asText("none").isEmpty() ? "none" : s.path("sha").asText(),
                        s.path("appliedAt").asText("-"), s.path("source").asText("-"));
                var table = new Table("CLUSTER", "STATE", "SHA", "IN-SYNC");
                for (var c : s.path("clusters")) {
                    table.row(c.path("cluster").asText(), c.path("state").asText(), c.path("sha").asText().isEmpty() ? "-" : c.path("sha").asText(),
                            c.path("sha").asText().equals(s.path("sha").asText()) ? "yes" : "no");
                }
                System.out.print(table.render());
                var git = s.path("git");
                if (!git.isMissingNode() && !git.isNull()) {
                    System.out.printf("git: %s %s, head %s, %s%n", git.path("url").asText(), git.path("branch").asText(),
                            git.path("headSha").asText("-"), git.path("reachable").asBoolean() ? "reachable"
                                    : "UNREACHABLE since " + git.path("unreachableSince").asText("-") + ": " + git.path("error").asText());
                }
                var rejection = s.path("lastRejection");
                if (!rejection.isMissingNode() && !rejection.isNull()) {
                    System.out.printf("last refused commit: %s at %s (the policy in force stayed)%n", rejection.path("sha").asText(),
                            rejection.path("at").asText());
                    rejection.path("errors").forEach(e -> System.out.println("  " + e.asText()));
                }
                return 0;
            } catch (ControllerOptions.CommandException e) {
                System.err.println("isthmus policy status: " + e.getMessage());
                return 1;
            }
        }
    }
}
