package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The `isthmus` command itself, run as a user runs it. */
class IsthmusCommandIT {

    private Path state;
    private Process watchdog;

    @BeforeEach
    void setUp() throws IOException {
        state = Files.createTempDirectory(LocalFederationExtension.home().resolve("e2e/target"), "cli-");
        watchdog = LocalFederationExtension.startWatchdog(state);
    }

    @AfterEach
    void tearDown() throws Exception {
        isthmus("down");
        watchdog.destroyForcibly();
    }

    private record Result(int exit, String output) {
    }

    /** Runs a local-federation command against this test's state dir. */
    private Result isthmus(String... args) throws Exception {
        return run(List.of(args), List.of("--home=" + LocalFederationExtension.home(), "--state-dir=" + state));
    }

    /** Runs an API command against one controller. */
    private Result isthmusAt(String controller, String... args) throws Exception {
        return run(List.of(args), List.of("--controller=" + controller));
    }

    /** Runs an API command against one controller of this test's local federation (its admin credential is found there). */
    private Result isthmusAtLocal(String controller, String... args) throws Exception {
        return run(List.of(args), List.of("--controller=" + controller, "--home=" + LocalFederationExtension.home(), "--state-dir=" + state));
    }

    private Result run(List<String> args, List<String> options) throws Exception {
        return run(args, options, Map.of());
    }

    private Result run(List<String> args, List<String> options, Map<String, String> env) throws Exception {
        var command = new ArrayList<>(List.of(LocalFederationExtension.javaCommand(), "-jar",
                LocalFederationExtension.home().resolve("isthmus-cli/target/isthmus-cli.jar").toString()));
        command.addAll(args);
        command.addAll(options);
        var pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().putAll(env);
        var p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(180, TimeUnit.SECONDS));
        System.out.println("$ isthmus " + String.join(" ", args) + "\n" + out);
        return new Result(p.exitValue(), out);
    }

    /** Every live process whose command line names the state dir. */
    private List<String> processesOfState() throws IOException {
        var found = new ArrayList<String>();
        try (var procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.filter(p -> p.getFileName().toString().matches("\\d+")).toList()) {
                try {
                    String cmd = Files.readString(p.resolve("cmdline")).replace('\0', ' ');
                    if (cmd.contains(state.toString())) {
                        found.add(p.getFileName() + ": " + cmd);
                    }
                } catch (IOException gone) {
                    // the process ended while we looked
                }
            }
        }
        return found;
    }

    @Test
    void upStartsTwoReadyRegionsAndDownLeavesNoProcessBehind() throws Exception {
        var up = isthmus("up", "--regions=us-east,eu-west", "--base-port=32000", "--quiet");
        assertEquals(0, up.exit(), up.output());
        assertTrue(up.output().contains("eu-west") && up.output().contains("federation-controller"), up.output());

        var status = isthmus("status");
        assertEquals(0, status.exit(), status.output());
        assertEquals(24, status.output().lines().filter(l -> l.contains(" ready ")).count(), status.output());
        assertEquals(24, processesOfState().size(), processesOfState().toString());
        // then the federation: clusters with their state (and policy SHA once applied), services and where they run, certificates
        String out = status.output();
        assertTrue(out.contains("CLUSTERS") && out.lines().anyMatch(l -> l.startsWith("us-east") && l.contains("eu-west") && l.contains("Active")), out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("shop/product-catalog") && l.contains("eu-west 4/4") && l.contains("us-east 4/4")), out);
        assertTrue(out.lines().anyMatch(l -> l.contains("trust-bridge") && l.contains("root (signing)") && l.contains("eu-west.acme.isthmus")), out);
        assertTrue(out.lines().anyMatch(l -> l.contains("sidecar-order-processing") && l.contains("spiffe://us-east.acme.isthmus/ns/shop/sa/order-processing")
                && l.matches(".* \\d+[dhm]\\s*$")), "each workload certificate with its expiry: " + out);

        var services = isthmusAt("http://127.0.0.1:32010", "services");
        assertEquals(0, services.exit(), services.output());
        assertTrue(services.output().contains("shop/product-catalog") && services.output().contains("eu-west/zone-a"), services.output());
        var clusters = isthmusAt("http://127.0.0.1:32010", "clusters", "-o", "json");
        assertEquals(0, clusters.exit(), clusters.output());
        assertTrue(clusters.output().contains("\"eu-west\""), clusters.output());

        // The seeded policy repository is watched by both controllers; policy status shows the SHA each runs.
        String policyStatus = "";
        for (int i = 0; i < 50 && !(policyStatus.contains("eu-west") && policyStatus.matches("(?s).*policy: [0-9a-f]{40}.*")); i++) {
            var policy = isthmusAt("http://127.0.0.1:32010", "policy", "status");
            assertEquals(0, policy.exit(), policy.output());
            policyStatus = policy.output();
            Thread.sleep(200);
        }
        assertTrue(policyStatus.matches("(?s).*policy: [0-9a-f]{40}.*") && policyStatus.contains("reachable"), policyStatus);
        var validate = run(List.of("policy", "validate", LocalFederationExtension.home().resolve("deploy/gitops-example").toString()), List.of());
        assertEquals(0, validate.exit(), validate.output());
        assertTrue(validate.output().contains("valid: 2 TrafficPolicy"), validate.output());

        var trust = isthmus("trust", "status", "--cluster", "eu-west");
        assertEquals(0, trust.exit(), trust.output());
        assertTrue(trust.output().contains("eu-west.acme.isthmus") && trust.output().contains("rotation Stable"), trust.output());
        var rotate = isthmus("trust", "rotate", "--cluster", "eu-west");
        assertEquals(0, rotate.exit(), rotate.output());
        assertTrue(rotate.output().contains("rotation Distributing"), rotate.output());
        var again = isthmus("trust", "rotate", "--cluster", "eu-west");
        assertEquals(1, again.exit(), again.output());
        assertTrue(again.output().contains("409") && again.output().contains("already under way"), again.output());

        var token = isthmusAtLocal("http://127.0.0.1:32010", "token", "create", "--cluster", "ap-south", "-q");
        assertEquals(0, token.exit(), token.output());
        assertTrue(token.output().strip().startsWith("isthmus-join-v1."), token.output());
        var join = isthmusAtLocal("http://127.0.0.1:32110", "join", token.output().strip());
        assertEquals(1, join.exit(), join.output());
        assertTrue(join.output().contains("409") && join.output().contains("eu-west is a member of federation 'acme'"), join.output());

        // eu-west drained: it says so, us-east sees it Draining; then the drain is ended.
        var drain = isthmusAtLocal("http://127.0.0.1:32110", "drain", "--for", "5m");
        assertEquals(0, drain.exit(), drain.output());
        assertTrue(drain.output().contains("drained (the other clusters send it no traffic) until"), drain.output());
        String seen = "";
        for (int i = 0; i < 50 && !seen.contains("Draining"); i++) {
            seen = isthmusAt("http://127.0.0.1:32010", "clusters").output();
            Thread.sleep(100);
        }
        assertTrue(seen.lines().anyMatch(l -> l.contains("eu-west") && l.contains("Draining")), seen);
        var badDrain = isthmusAtLocal("http://127.0.0.1:32110", "drain", "--for", "2d");
        assertEquals(1, badDrain.exit(), badDrain.output());
        assertTrue(badDrain.output().contains("1s to 24h"), badDrain.output());
        var endDrain = isthmusAtLocal("http://127.0.0.1:32110", "drain", "--end");
        assertEquals(0, endDrain.exit(), endDrain.output());
        assertFalse(endDrain.output().contains("drained"), endDrain.output());

        var logs = isthmus("logs", "eu-west/federation-controller", "-n", "50");
        assertEquals(0, logs.exit());
        assertTrue(logs.output().contains("eu-west"), logs.output());

        var down = isthmus("down");
        assertEquals(0, down.exit(), down.output());
        assertTrue(down.output().contains("stopped 24 processes"), down.output());
        assertEquals(List.of(), processesOfState());
    }

    @Test
    void aPortInUseFailsWithItsNumberAndStartsNothing() throws Exception {
        try (var squatter = new ServerSocket()) {
            squatter.bind(new InetSocketAddress("127.0.0.1", 28010));
            var up = isthmus("up", "--regions=us-east", "--base-port=28000");
            assertEquals(1, up.exit(), up.output());
            assertTrue(up.output().contains("port 28010") && up.output().contains("us-east/federation-controller"), up.output());
            assertEquals(List.of(), processesOfState());
        }
    }

    @Test
    void aMissingNatsServerIsNamedWithTheInstallCommandAndStartsNothing() throws Exception {
        var up = run(List.of("up", "--regions=us-east", "--base-port=28000"),
                List.of("--home=" + LocalFederationExtension.home(), "--state-dir=" + state), Map.of("PATH", "/nonexistent"));
        assertEquals(1, up.exit(), up.output());
        assertTrue(up.output().contains("nats-server is not installed") && up.output().contains("apt-get install -y nats-server"), up.output());
        assertEquals(List.of(), processesOfState());
    }

    @Test
    void rejectsARegionThatIsNotADnsLabel() throws Exception {
        var up = isthmus("up", "--regions=US_East", "--base-port=28000");
        assertEquals(2, up.exit(), up.output());
        assertTrue(up.output().contains("'US_East'"), up.output());
    }
}
