package dev.isthmus.cli.local;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.ServerSocket;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Starts, inspects and stops the processes of a {@link Topology} on this machine. Both
 * {@code isthmus up/down/status} and the e2e fixture use it, so the tests run what operators run.
 *
 * <p>Each process gets its own directory under the state dir with its log and pid file. A process
 * counts as ours only if its command line names our state dir, so {@link #stop} never signals a
 * process it did not start, even when a pid was reused.
 */
public final class LocalFederation {

    private final Topology topology;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(1)).build();
    private final Consumer<String> progress;

    public LocalFederation(Topology topology, Consumer<String> progress) {
        this.topology = topology;
        this.progress = progress;
    }

    public Topology topology() {
        return topology;
    }

    /** What {@link #status} reports of one component. */
    public record ComponentStatus(Component component, Optional<Long> pid, boolean alive, boolean ready) {
    }

    /**
     * Starts every component, stage by stage, and returns once all are ready. On any failure,
     * everything started so far is stopped before the exception is thrown.
     */
    public void start(Duration readyTimeout) throws LocalFederationException, IOException, InterruptedException {
        start(readyTimeout, true);
    }

    /**
     * Starts every component; with {@code federate}, then joins every region to the first through the
     * REST join flow ({@link #federate}), as an operator would.
     */
    public void start(Duration readyTimeout, boolean federate) throws LocalFederationException, IOException, InterruptedException {
        if (running()) {
            throw new LocalFederationException("a local federation is already running from " + topology.stateDir()
                    + ": see ./isthmus status, stop it with ./isthmus down");
        }
        preflight();
        Files.createDirectories(topology.stateDir());
        Files.writeString(topology.stateDir().resolve("regions"), String.join(",", topology.regions()) + "\n");
        Files.writeString(topology.stateDir().resolve("base-port"), topology.basePort() + "\n");
        Files.writeString(topology.stateDir().resolve("federation"), topology.federation() + "\n");
        Files.writeString(topology.stateDir().resolve("absent"), String.join(",", new java.util.TreeSet<>(topology.absent())) + "\n");
        Files.writeString(topology.prometheusConfig(), topology.prometheusConfigText());
        for (String region : topology.regions()) {
            writeCredential(topology.adminTokenFile(region));
            writeCredential(topology.workloadTokenFile(region));
            Path conf = topology.natsConfig(region);
            Files.createDirectories(conf.getParent());
            Files.writeString(conf, topology.natsConfigText(region));
        }
        writeCredential(topology.policyWebhookSecretFile());
        seedPolicyRepo();
        var byStage = new LinkedHashMap<Integer, List<Component>>();
        for (Component c : topology.components()) {
            byStage.computeIfAbsent(c.stage(), k -> new ArrayList<>()).add(c);
        }
        try {
            for (var stage : byStage.values()) {
                var started = new LinkedHashMap<Component, Process>();
                for (Component c : stage) {
                    started.put(c, launch(c));
                }
                awaitReady(started, readyTimeout);
            }
            awaitNatsGateways(readyTimeout);
            if (federate) {
                federate(readyTimeout);
            }
        } catch (LocalFederationException | IOException | InterruptedException | RuntimeException e) {
            progress.accept("start failed; stopping what was started");
            stop();
            throw e;
        }
    }

    /** A client for a region's controller, with its admin credential. */
    public ControllerClient controller(String region) throws IOException {
        return adminClient(region, topology.controllerPort(region));
    }

    /** A client for a region's trust bridge, with the region's admin credential. */
    public ControllerClient trustBridge(String region) throws IOException {
        return adminClient(region, topology.trustBridgePort(region));
    }

    private ControllerClient adminClient(String region, int port) throws IOException {
        Path file = topology.adminTokenFile(region);
        return new ControllerClient(URI.create("http://" + Topology.HOST + ":" + port), Files.exists(file) ? Files.readString(file).strip() : null);
    }

    /**
     * Joins every region to the first one's federation through the REST join flow: a token made on
     * the first region for each other region, presented to that region's controller. Regions that
     * are members already (a restart with kept state) are left alone. Returns once every controller
     * lists every other region {@code Active}.
     */
    public void federate(Duration timeout) throws LocalFederationException, IOException, InterruptedException {
        String founder = topology.regions().get(0);
        try {
            for (String region : topology.regions().subList(1, topology.regions().size())) {
                var view = controller(region).get("/api/v1/federation");
                if (!view.path("state").asText().equals("Unfederated")) {
                    continue;
                }
                var token = controller(founder).post("/api/v1/join-tokens",
                        "{\"cluster\":" + ControllerClient.quote(region) + ",\"ttl\":\"5m\"}");
                controller(region).post("/api/v1/federation/join", "{\"token\":" + ControllerClient.quote(token.path("token").asText()) + "}");
                progress.accept("joined  " + region + " to federation '" + token.path("federation").asText() + "' (token from " + founder + ")");
            }
        } catch (ControllerClient.ApiException e) {
            throw new LocalFederationException("forming the federation failed: " + e.getMessage());
        }
        awaitFederated(timeout);
    }

    /** Waits until every controller lists every other region as Active. */
    public void awaitFederated(Duration timeout) throws LocalFederationException, IOException, InterruptedException {
        Instant deadline = Instant.now().plus(timeout);
        String last = "";
        for (String region : topology.regions()) {
            while (true) {
                try {
                    var clusters = controller(region).get("/api/v1/clusters");
                    long active = 0;
                    for (var c : clusters) {
                        if (c.path("state").asText().equals("Active")) {
                            active++;
                        }
                    }
                    if (active == topology.regions().size() - 1) {
                        break;
                    }
                    last = clusters.toString();
                } catch (ControllerClient.ApiException e) {
                    last = e.getMessage();
                }
                if (Instant.now().isAfter(deadline)) {
                    throw new LocalFederationException("the controller of " + region + " did not see every other region Active within "
                            + timeout.toSeconds() + " s; last answer: " + last);
                }
                Thread.sleep(100);
            }
        }
        progress.accept("ready   federation: " + topology.regions().size() + " regions Active on every controller");
        awaitTrustFederated(deadline);
        progress.accept("ready   trust: every sidecar holds the roots of the " + topology.regions().size() + " regions' trust domains");
    }

    /**
     * Waits until every sidecar's {@code /config_dump} lists every region's trust domain: the roots
     * travel from each trust bridge through the controllers (signed, over NATS) to the other
     * regions' trust bridges and on to their sidecars' bundle watch. Before that, a call to another
     * region fails its mTLS handshake, and the caller's outlier detection counts the failure against
     * that region (seen in e2e: a region ejected for 30 s right after start).
     */
    void awaitTrustFederated(Instant deadline) throws LocalFederationException, InterruptedException {
        var wanted = new java.util.TreeSet<String>();
        topology.regions().forEach(r -> wanted.add(r + "." + topology.federation() + ".isthmus"));
        for (String region : topology.regions()) {
            for (String deployment : Topology.SHOP_DEPLOYMENTS) {
                if (!topology.runs(region, deployment)) {
                    continue;
                }
                var admin = new ControllerClient(URI.create("http://" + Topology.HOST + ":" + topology.sidecarAdminPort(region, deployment)), null);
                String last = "";
                while (true) {
                    try {
                        var held = new java.util.TreeSet<String>();
                        admin.get("/config_dump").path("svid").path("trust_domains").forEach(d -> held.add(d.asText()));
                        if (held.containsAll(wanted)) {
                            break;
                        }
                        last = "holds " + held;
                    } catch (ControllerClient.ApiException e) {
                        last = e.getMessage();
                    }
                    if (Instant.now().isAfter(deadline)) {
                        throw new LocalFederationException("the sidecar of " + region + "/" + deployment + " did not get the roots of every trust domain "
                                + wanted + " in time; it " + last);
                    }
                    Thread.sleep(100);
                }
            }
        }
    }

    /** Makes a random credential file (owner-only) unless one exists; the processes of a region read it. */
    /**
     * Creates the federation's policy repository (bare, branch {@code main}) with the example GitOps
     * policy as its first commit, when it does not exist yet; an existing one is left as it is.
     */
    void seedPolicyRepo() throws IOException {
        Path repo = topology.policyRepo();
        if (Files.exists(repo.resolve("HEAD"))) {
            return;
        }
        Path example = topology.home().resolve("deploy/gitops-example");
        Path work = Files.createTempDirectory(topology.stateDir(), "policy-seed-");
        try {
            try (var walk = Files.walk(example)) {
                for (Path p : walk.toList()) {
                    Path target = work.resolve(example.relativize(p).toString());
                    if (Files.isDirectory(p)) {
                        Files.createDirectories(target);
                    } else {
                        Files.copy(p, target);
                    }
                }
            }
            org.eclipse.jgit.api.Git.init().setBare(true).setInitialBranch("main").setDirectory(repo.toFile()).call().close();
            try (var git = org.eclipse.jgit.api.Git.init().setInitialBranch("main").setDirectory(work.toFile()).call()) {
                git.add().addFilepattern(".").call();
                var who = new org.eclipse.jgit.lib.PersonIdent("isthmus up", "isthmus@localhost");
                git.commit().setMessage("The example policy (deploy/gitops-example)").setAuthor(who).setCommitter(who).call();
                git.push().setRemote(repo.toUri().toString()).setRefSpecs(new org.eclipse.jgit.transport.RefSpec("main:main")).call();
            }
        } catch (org.eclipse.jgit.api.errors.GitAPIException e) {
            throw new IOException("cannot create the policy repository " + repo + ": " + e.getMessage(), e);
        } finally {
            try (var walk = Files.walk(work)) {
                for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    static void writeCredential(Path file) throws IOException {
        if (Files.exists(file)) {
            return;
        }
        Files.createDirectories(file.getParent());
        Files.setPosixFilePermissions(file.getParent(), java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        byte[] raw = new byte[32];
        new java.security.SecureRandom().nextBytes(raw);
        Files.createFile(file, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
        Files.writeString(file, java.util.HexFormat.of().formatHex(raw) + "\n");
    }

    /** Fails early, with the fix, on a missing nats-server, a missing build, or a port in use. */
    private void preflight() throws LocalFederationException {
        if (findOnPath("nats-server").isEmpty()) {
            throw new LocalFederationException("nats-server is not installed (it runs each region's message bus): "
                    + "install it with `sudo apt-get install -y nats-server`, or run ./isthmus, which does");
        }
        for (Component c : topology.components()) {
            if (c.kind() != Component.Kind.NATS) {
                Path jar = Path.of(c.command().get(c.command().size() - 1));
                if (!Files.isRegularFile(jar)) {
                    throw new LocalFederationException(c.id() + " is not built (" + jar + " is missing): run ./mvnw -DskipTests package");
                }
            }
        }
        int[] ephemeral = ephemeralPortRange();
        for (Component c : topology.components()) {
            for (int port : c.ports()) {
                if (port >= ephemeral[0] && port <= ephemeral[1]) {
                    throw new LocalFederationException("port " + port + " (wanted by " + c.id() + ") is in this machine's ephemeral port "
                            + "range " + ephemeral[0] + "-" + ephemeral[1] + " (/proc/sys/net/ipv4/ip_local_port_range), where any outgoing "
                            + "connection may take it first; pick a --base-port below " + ephemeral[0] + " (at most "
                            + (ephemeral[0] - 100 * topology.regions().size()) + " for " + topology.regions().size() + " regions)");
                }
                if (!portFree(port)) {
                    throw new LocalFederationException("port " + port + " (wanted by " + c.id() + ") is in use by another process: "
                            + "stop that process, or pick another port range with --base-port");
                }
            }
        }
    }

    /** The kernel's range for outgoing connections' local ports; 32768-60999 if it cannot be read. */
    static int[] ephemeralPortRange() {
        try {
            String[] parts = Files.readString(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).strip().split("\\s+");
            return new int[] {Integer.parseInt(parts[0]), Integer.parseInt(parts[1])};
        } catch (IOException | RuntimeException e) {
            return new int[] {32768, 60999};
        }
    }

    static boolean portFree(int port) {
        try (var s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(InetAddress.getByName(Topology.HOST), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    static Optional<Path> findOnPath(String program) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, program);
            if (Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    private Process launch(Component c) throws IOException {
        Files.createDirectories(c.workDir());
        var command = new ArrayList<String>();
        // Its own session: a Ctrl-C at the terminal that ran `isthmus up` does not reach it.
        findOnPath("setsid").ifPresent(p -> command.add(p.toString()));
        command.addAll(c.command());
        var pb = new ProcessBuilder(command)
                .directory(c.workDir().toFile())
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(c.logFile().toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        pb.environment().putAll(c.environment());
        Files.writeString(c.logFile(), "=== " + Instant.now() + " starting " + c.id() + ": " + String.join(" ", c.command()) + "\n",
                StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        Process p = pb.start();
        Files.writeString(c.pidFile(), p.pid() + "\n");
        progress.accept("started " + c.id() + " pid=" + p.pid());
        return p;
    }

    private void awaitReady(Map<Component, Process> started, Duration timeout) throws LocalFederationException, InterruptedException {
        Instant deadline = Instant.now().plus(timeout);
        var pending = new ArrayList<>(started.keySet());
        while (!pending.isEmpty()) {
            for (var it = pending.iterator(); it.hasNext(); ) {
                Component c = it.next();
                Process p = started.get(c);
                if (!p.isAlive()) {
                    throw new LocalFederationException(c.id() + " exited with status " + p.exitValue() + " while starting. "
                            + "Last lines of " + c.logFile() + ":\n" + tail(c.logFile(), 25));
                }
                if (ready(c)) {
                    progress.accept("ready   " + c.id());
                    it.remove();
                }
            }
            if (pending.isEmpty()) {
                break;
            }
            if (Instant.now().isAfter(deadline)) {
                Component c = pending.get(0);
                throw new LocalFederationException(c.id() + " was not ready within " + timeout.toSeconds() + " s ("
                        + c.readiness() + " did not answer 200). Last lines of " + c.logFile() + ":\n" + tail(c.logFile(), 25));
            }
            Thread.sleep(200);
        }
    }

    /** Waits until every region's NATS server has its gateway links to all other regions up. */
    private void awaitNatsGateways(Duration timeout) throws LocalFederationException, InterruptedException {
        Instant deadline = Instant.now().plus(timeout);
        for (String region : topology.regions()) {
            while (true) {
                int linked = natsGatewayLinks(region);
                if (linked >= topology.regions().size() - 1) {
                    break;
                }
                if (Instant.now().isAfter(deadline)) {
                    throw new LocalFederationException("nats-server of " + region + " linked to " + linked + " of "
                            + (topology.regions().size() - 1) + " other regions within " + timeout.toSeconds() + " s; see "
                            + topology.regionDir(region).resolve("nats/process.log"));
                }
                Thread.sleep(200);
            }
        }
        progress.accept("ready   NATS super-cluster: " + topology.regions().size() + " regions gateway-linked");
    }

    /** Outbound gateway connections of a region's NATS server, from its monitoring endpoint. */
    public int natsGatewayLinks(String region) {
        try {
            var res = http.send(HttpRequest.newBuilder(java.net.URI.create("http://" + Topology.HOST + ":"
                    + topology.natsMonitorPort(region) + "/gatewayz")).timeout(Duration.ofSeconds(2)).build(),
                    HttpResponse.BodyHandlers.ofString());
            // Count the names inside "outbound_gateways": {...}; each linked gateway appears once there.
            String body = res.body();
            int start = body.indexOf("\"outbound_gateways\"");
            if (start < 0) {
                return 0;
            }
            int linked = 0;
            for (String other : topology.regions()) {
                if (!other.equals(region) && body.indexOf("\"" + other + "\"", start) >= 0) {
                    linked++;
                }
            }
            return linked;
        } catch (IOException e) {
            return 0;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 0;
        }
    }

    public boolean ready(Component c) {
        try {
            var res = http.send(HttpRequest.newBuilder(c.readiness()).timeout(Duration.ofSeconds(2)).build(),
                    HttpResponse.BodyHandlers.discarding());
            return res.statusCode() == 200;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** True if any component recorded under the state dir is still alive. */
    public boolean running() {
        return topology.components().stream().anyMatch(c -> ourProcess(c).isPresent());
    }

    public List<ComponentStatus> status() {
        var out = new ArrayList<ComponentStatus>();
        for (Component c : topology.components()) {
            Optional<ProcessHandle> p = ourProcess(c);
            out.add(new ComponentStatus(c, p.map(ProcessHandle::pid), p.isPresent(), p.isPresent() && ready(c)));
        }
        return out;
    }

    /** The live process recorded for a component, if it is still ours. */
    public Optional<ProcessHandle> ourProcess(Component c) {
        try {
            if (!Files.exists(c.pidFile())) {
                return Optional.empty();
            }
            long pid = Long.parseLong(Files.readString(c.pidFile()).strip());
            return ProcessHandle.of(pid).filter(ProcessHandle::isAlive).filter(this::startedByUs);
        } catch (IOException | NumberFormatException e) {
            return Optional.empty();
        }
    }

    private boolean startedByUs(ProcessHandle p) {
        try {
            String cmdline = Files.readString(Path.of("/proc/" + p.pid() + "/cmdline")).replace('\0', ' ');
            return cmdline.contains(topology.stateDir().toString());
        } catch (IOException e) {
            return false;
        }
    }

    /** Stops every component we started: SIGTERM, then SIGKILL after a grace period. Returns how many. */
    public int stop() throws InterruptedException {
        var live = new ArrayList<ProcessHandle>();
        var reversed = new ArrayList<>(topology.components());
        java.util.Collections.reverse(reversed);
        for (Component c : reversed) {
            ourProcess(c).ifPresent(live::add);
        }
        Processes.stop(live, Duration.ofSeconds(10));
        for (Component c : reversed) {
            try {
                Files.deleteIfExists(c.pidFile());
            } catch (IOException e) {
                progress.accept("could not remove " + c.pidFile() + ": " + e.getMessage());
            }
        }
        return live.size();
    }

    /** Sends SIGKILL to one component, as a crash would. */
    public void kill(Component c) throws InterruptedException {
        Optional<ProcessHandle> p = ourProcess(c);
        if (p.isPresent()) {
            p.get().destroyForcibly();
            p.get().onExit().join();
        }
    }

    /**
     * A region going dark: SIGKILL to every process of {@code region} at once (nats-server,
     * controller, trust bridge, gateway, apps and sidecars), as a power cut would. Returns how many,
     * once every one has exited.
     */
    public int killRegion(String region) {
        var live = new ArrayList<ProcessHandle>();
        for (Component c : topology.components()) {
            if (c.region().equals(region)) {
                ourProcess(c).ifPresent(live::add);
            }
        }
        live.forEach(ProcessHandle::destroyForcibly);
        live.forEach(p -> p.onExit().join());
        return live.size();
    }

    /** Starts every component of {@code region} that is not running, stage by stage as {@link #start} does, and waits until they are ready. */
    public void startRegion(String region, Duration timeout) throws LocalFederationException, IOException, InterruptedException {
        var byStage = new java.util.TreeMap<Integer, List<Component>>();
        for (Component c : topology.components()) {
            if (c.region().equals(region) && ourProcess(c).isEmpty()) {
                byStage.computeIfAbsent(c.stage(), k -> new ArrayList<>()).add(c);
            }
        }
        for (var stage : byStage.values()) {
            var started = new LinkedHashMap<Component, Process>();
            for (Component c : stage) {
                started.put(c, launch(c));
            }
            awaitReady(started, timeout);
        }
    }

    /** Starts one component again (after {@link #kill}) and waits until it is ready. */
    public void restart(Component c, Duration timeout) throws LocalFederationException, IOException, InterruptedException {
        if (ourProcess(c).isPresent()) {
            throw new LocalFederationException(c.id() + " is still running");
        }
        awaitReady(Map.of(c, launch(c)), timeout);
    }

    public Component component(String id) throws LocalFederationException {
        return topology.components().stream().filter(c -> c.id().equals(id) || c.name().equals(id)).findFirst()
                .orElseThrow(() -> new LocalFederationException("no component '" + id + "'; components are: "
                        + topology.components().stream().map(Component::id).toList()));
    }

    public static String tail(Path file, int lines) {
        try {
            List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }
}
