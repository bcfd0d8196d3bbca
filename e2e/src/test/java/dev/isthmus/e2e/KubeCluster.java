package dev.isthmus.e2e;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Runs the pods of {@link KubeManifests} as real processes, as a node would, without a container
 * engine (there is none here):
 * <ul>
 *   <li>a pod is an address of its own, {@code 127.0.77.N}: what its containers bind to
 *       {@code 0.0.0.0} or {@code 127.0.0.1} they bind there, so pods use the same ports side by side;</li>
 *   <li>a container's image is its Dockerfile in {@code deploy/kubernetes/images}: the files its
 *       {@code COPY} lines name are laid out (hard-linked) under the container's own root, and its
 *       {@code ENTRYPOINT}/{@code CMD} run with the container's {@code command}/{@code args}, {@code java}
 *       being this machine's JDK (the images' JRE is 21; this one is at least 21). The NATS image runs
 *       Debian's {@code nats-server};</li>
 *   <li>volumes: ConfigMaps and Secrets written as files, projected service-account tokens issued by
 *       the {@link KubeApiServer}, emptyDirs and claims as directories; every absolute path a
 *       container is given (environment, arguments, the ConfigMap files it mounts) is moved under its
 *       root or the volume mounted there;</li>
 *   <li>environment as the kubelet makes it: values, {@code $(VAR)}, ConfigMap and Secret keys,
 *       {@code fieldRef}, {@code envFrom}; a Service's DNS name ({@code name.ns.svc[:port]}, and
 *       {@code pod.name.ns.svc} for a headless one) is replaced by the address of a pod it selects
 *       and the port it targets there; a pod whose service account token is mounted reaches the API
 *       server with that account's token (KUBERNETES_MASTER, KUBERNETES_AUTH_TOKEN);</li>
 *   <li>readiness is the containers' own readiness probes (HTTP GET or TCP).</li>
 * </ul>
 */
final class KubeCluster implements AutoCloseable {

    static final Pattern SERVICE_NAME = Pattern.compile("(?:([a-z0-9-]+)\\.)?([a-z0-9-]+)\\.([a-z0-9-]+)\\.svc(?:\\.cluster\\.local)?(?::(\\d+))?");
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();

    final KubeManifests manifests;
    final KubeApiServer api;
    final Map<String, Map<String, String>> secrets;
    final Path dir;
    final Path home;
    final List<Pod> pods = new ArrayList<>();
    private final String network;
    private int nextAddress = 10;
    /** Names outside the cluster (a LoadBalancer's DNS name) → the cluster and Service behind them. */
    final Map<String, Map.Entry<KubeCluster, String>> external = new java.util.concurrent.ConcurrentHashMap<>();

    /** @param network the first three octets of its pods' addresses, e.g. {@code 127.0.77} */
    KubeCluster(KubeManifests manifests, KubeApiServer api, Map<String, Map<String, String>> secrets, Path dir, Path home, String network) {
        this.manifests = manifests;
        this.api = api;
        this.secrets = secrets;
        this.dir = dir;
        this.home = home;
        this.network = network;
    }

    /** Makes one pod of a workload (not started): its name, address and root. */
    Pod pod(KubeManifests.Workload w) {
        String name = w.kind().equals("StatefulSet") ? w.name() + "-0" : w.name() + "-" + Integer.toHexString(w.name().hashCode() & 0xfffff);
        var pod = new Pod(name, w.namespace(), network + "." + nextAddress++, w.template(), dir.resolve(w.namespace() + "-" + name), w);
        pods.add(pod);
        return pod;
    }

    Optional<Pod> podNamed(String namespace, String name) {
        return pods.stream().filter(p -> p.namespace.equals(namespace) && p.name.equals(name)).findFirst();
    }

    /**
     * {@code name.ns.svc[:port]} → the address of a pod the Service selects, and the port it targets
     * there; an external name ({@link #external}, a LoadBalancer's) the same in the cluster behind it.
     */
    String resolveServices(String text) {
        for (var e : external.entrySet()) {
            Matcher x = Pattern.compile(Pattern.quote(e.getKey()) + "(?::(\\d+))?").matcher(text);
            var out = new StringBuilder();
            while (x.find()) {
                var behind = e.getValue().getKey();
                String ns = "isthmus-system";
                String svc = e.getValue().getValue();
                x.appendReplacement(out, Matcher.quoteReplacement(behind.resolveServices(svc + "." + ns + ".svc" + (x.group(1) == null ? "" : ":" + x.group(1)))));
            }
            x.appendTail(out);
            text = out.toString();
        }
        Matcher m = SERVICE_NAME.matcher(text);
        var sb = new StringBuilder();
        while (m.find()) {
            String podName = m.group(1);
            Service svc = manifests.find(Service.class, m.group(3), m.group(2))
                    .orElseThrow(() -> new AssertionError("'" + m.group() + "' names Service " + m.group(3) + "/" + m.group(2) + ", which no manifest defines"));
            Pod target = pods.stream().filter(p -> p.namespace.equals(m.group(3)) && KubeManifests.selects(svc.getSpec().getSelector(), p.labels())
                    && (podName == null || p.name.equals(podName))).findFirst()
                    .orElseThrow(() -> new AssertionError("'" + m.group() + "': Service " + svc.getMetadata().getName() + " selects no pod"
                            + (podName == null ? "" : " named " + podName)));
            String replacement = target.ip;
            if (m.group(4) != null) {
                int port = Integer.parseInt(m.group(4));
                replacement += ":" + KubeManifests.targetPort(svc, port, target.template).orElseThrow(() -> new AssertionError(
                        "'" + m.group() + "': Service " + svc.getMetadata().getName() + " has no port " + port + " that targets a container port of " + target.name));
            }
            m.appendReplacement(sb, Matcher.quoteReplacement(replacement));
        }
        m.appendTail(sb);
        return sb.toString();
    }

    @Override
    public void close() {
        pods.forEach(Pod::stop);
    }

    /** One pod: its containers as processes. */
    final class Pod {
        final String name;
        final String namespace;
        final String ip;
        final PodTemplateSpec template;
        final Path root;
        final KubeManifests.Workload workload;
        final List<Process> processes = new ArrayList<>();

        Pod(String name, String namespace, String ip, PodTemplateSpec template, Path root, KubeManifests.Workload workload) {
            this.name = name;
            this.namespace = namespace;
            this.ip = ip;
            this.template = template;
            this.root = root;
            this.workload = workload;
        }

        Map<String, String> labels() {
            return template.getMetadata().getLabels();
        }

        String serviceAccount() {
            return Optional.ofNullable(template.getSpec().getServiceAccountName()).orElse("default");
        }

        boolean tokenMounted() {
            if (Boolean.FALSE.equals(template.getSpec().getAutomountServiceAccountToken())) {
                return false;
            }
            return manifests.find(ServiceAccount.class, namespace, serviceAccount())
                    .map(sa -> !Boolean.FALSE.equals(sa.getAutomountServiceAccountToken())).orElse(true);
        }

        Path volume(String name) {
            return root.resolve("volumes").resolve(name);
        }

        /** Where a container's absolute path is on this machine: under its root, where its volumes are mounted (see {@link #mount}). */
        Path local(Container c, String path) {
            return root.resolve("containers").resolve(c.getName()).resolve(path.substring(1));
        }

        /**
         * Mounts the container's volumes under its root as the kubelet does: a directory mount is a link to
         * the volume, a {@code subPath} mount a copy of that one file (which, as in Kubernetes, does not
         * follow later changes).
         */
        private void mount(Container c) throws IOException {
            for (VolumeMount vm : Optional.ofNullable(c.getVolumeMounts()).orElse(List.of())) {
                Path at = local(c, vm.getMountPath());
                Files.createDirectories(at.getParent());
                Path volume = volume(vm.getName());
                if (!Files.isDirectory(volume)) {
                    throw new AssertionError(name + "/" + c.getName() + ": mounts volume " + vm.getName() + ", which the pod does not have");
                }
                if (vm.getSubPath() != null && !vm.getSubPath().isEmpty()) {
                    Files.copy(volume.resolve(vm.getSubPath()), at, StandardCopyOption.REPLACE_EXISTING);
                } else {
                    Files.createSymbolicLink(at, volume);
                }
            }
        }

        /** Rewrites what a container is given: pod-local addresses to the pod's, Service names to pods, absolute paths to local ones. */
        String rewrite(Container c, String value) {
            String v = resolveServices(value.replace("0.0.0.0", ip).replace("127.0.0.1", ip));
            if (v.startsWith("/")) {
                return local(c, v).toString();
            }
            Matcher m = Pattern.compile("(=|\")(/[A-Za-z0-9._/-]+)").matcher(v);
            var sb = new StringBuilder();
            while (m.find()) {
                m.appendReplacement(sb, Matcher.quoteReplacement(m.group(1) + local(c, m.group(2))));
            }
            m.appendTail(sb);
            return sb.toString();
        }

        void start() throws Exception {
            Files.createDirectories(root);
            for (Volume v : Optional.ofNullable(template.getSpec().getVolumes()).orElse(List.of())) {
                Path d = Files.createDirectories(volume(v.getName()));
                if (v.getConfigMap() != null) {
                    ConfigMap cm = manifests.find(ConfigMap.class, namespace, v.getConfigMap().getName())
                            .orElseThrow(() -> new AssertionError(name + ": volume " + v.getName() + " mounts ConfigMap " + v.getConfigMap().getName() + ", not defined"));
                    for (var e : cm.getData().entrySet()) {
                        Files.writeString(d.resolve(e.getKey()), e.getValue());
                    }
                } else if (v.getSecret() != null) {
                    var data = secrets.get(namespace + "/" + v.getSecret().getSecretName());
                    if (data == null) {
                        throw new AssertionError(name + ": Secret " + v.getSecret().getSecretName() + " is not one the test makes");
                    }
                    for (var e : data.entrySet()) {
                        Files.writeString(d.resolve(e.getKey()), e.getValue());
                    }
                } else if (v.getProjected() != null) {
                    for (var source : v.getProjected().getSources()) {
                        var sat = source.getServiceAccountToken();
                        if (sat == null) {
                            throw new AssertionError(name + ": projected volume " + v.getName() + " has a source the test does not make");
                        }
                        Files.writeString(d.resolve(sat.getPath()), api.issueToken(namespace, serviceAccount(), sat.getAudience()));
                    }
                } else if (v.getEmptyDir() == null) {
                    throw new AssertionError(name + ": volume " + v.getName() + " is of a kind the test does not make");
                }
            }
            for (String claim : workload.claims()) {
                Files.createDirectories(volume(claim));
            }
            for (Container c : KubeManifests.longRunning(template)) {
                processes.add(run(c));
            }
        }

        private Process run(Container c) throws Exception {
            Path croot = Files.createDirectories(root.resolve("containers").resolve(c.getName()));
            mount(c);
            Files.createDirectories(local(c, "/tmp"));
            var env = new LinkedHashMap<String, String>();
            for (var from : Optional.ofNullable(c.getEnvFrom()).orElse(List.of())) {
                ConfigMap cm = manifests.find(ConfigMap.class, namespace, from.getConfigMapRef().getName())
                        .orElseThrow(() -> new AssertionError(name + "/" + c.getName() + ": envFrom ConfigMap " + from.getConfigMapRef().getName() + " not defined"));
                env.putAll(cm.getData());
            }
            for (EnvVar e : Optional.ofNullable(c.getEnv()).orElse(List.of())) {
                String value = value(c, e, env);
                if (value != null) {
                    env.put(e.getName(), value);
                }
            }
            env.replaceAll((k, v) -> rewrite(c, v));
            if (tokenMounted()) {
                env.put("KUBERNETES_MASTER", api.url());
                env.put("KUBERNETES_AUTH_TOKEN", api.issueToken(namespace, serviceAccount(), null));
                env.put("KUBERNETES_AUTH_TRYKUBECONFIG", "false");
                env.put("KUBERNETES_AUTH_TRYSERVICEACCOUNT", "false");
                env.put("KUBERNETES_NAMESPACE", namespace);
            }
            List<String> argv = new ArrayList<>();
            Path workdir = croot;
            String image = c.getImage();
            if (image.startsWith("nats:")) {
                argv.add("nats-server");
                for (String a : Optional.ofNullable(c.getArgs()).orElse(List.of())) {
                    argv.add(rewrite(c, a));
                }
                // The config files it reads name mounted paths and Services too.
                for (VolumeMount vm : c.getVolumeMounts()) {
                    Path p = local(c, vm.getMountPath());
                    if (Files.isRegularFile(p) || Files.isDirectory(p)) {
                        try (var files = Files.walk(p, java.nio.file.FileVisitOption.FOLLOW_LINKS)) {
                            for (Path f : files.filter(Files::isRegularFile).filter(f -> f.toString().endsWith(".conf")).toList()) {
                                Files.writeString(f, rewrite(c, Files.readString(f)));
                            }
                        }
                    }
                }
            } else {
                var docker = Dockerfile.read(home.resolve("deploy/kubernetes/images").resolve(imageName(image) + ".Dockerfile"));
                docker.layOut(home, p -> local(c, p));
                List<String> entry = c.getCommand() != null && !c.getCommand().isEmpty() ? c.getCommand() : docker.entrypoint;
                List<String> cmd = c.getArgs() != null && !c.getArgs().isEmpty() ? c.getArgs()
                        : (c.getCommand() != null && !c.getCommand().isEmpty() ? List.of() : docker.cmd);
                var all = new ArrayList<>(entry);
                all.addAll(cmd);
                for (String a : all) {
                    argv.add(argv.isEmpty() && a.equals("java") ? LocalFederationExtension.javaCommand() : rewrite(c, expand(a, env)));
                }
                docker.env.forEach(env::putIfAbsent);
                if (docker.workdir != null) {
                    workdir = local(c, docker.workdir);
                }
            }
            var pb = new ProcessBuilder(argv).directory(workdir.toFile()).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(root.resolve(c.getName() + ".log").toFile()));
            pb.environment().keySet().removeIf(k -> k.startsWith("ISTHMUS_") || k.startsWith("QUARKUS_") || k.startsWith("KUBERNETES_"));
            pb.environment().putAll(env);
            Files.writeString(root.resolve(c.getName() + ".command"), String.join(" ", argv) + "\n" + env + "\n");
            return pb.start();
        }

        private String value(Container c, EnvVar e, Map<String, String> env) {
            if (e.getValue() != null) {
                return expand(e.getValue(), env);
            }
            var from = e.getValueFrom();
            if (from == null) {
                return "";
            }
            if (from.getConfigMapKeyRef() != null) {
                var ref = from.getConfigMapKeyRef();
                var cm = manifests.find(ConfigMap.class, namespace, ref.getName());
                String v = cm.map(m -> m.getData().get(ref.getKey())).orElse(null);
                if (v == null && !Boolean.TRUE.equals(ref.getOptional())) {
                    throw new AssertionError(name + "/" + c.getName() + ": " + e.getName() + " takes key " + ref.getKey() + " of ConfigMap "
                            + ref.getName() + ", which " + (cm.isPresent() ? "has no such key" : "is not defined"));
                }
                return v;
            }
            if (from.getSecretKeyRef() != null) {
                var ref = from.getSecretKeyRef();
                var data = secrets.get(namespace + "/" + ref.getName());
                String v = data == null ? null : data.get(ref.getKey());
                if (v == null && !Boolean.TRUE.equals(ref.getOptional())) {
                    throw new AssertionError(name + "/" + c.getName() + ": " + e.getName() + " takes key " + ref.getKey() + " of Secret " + ref.getName()
                            + ", which the test (as the README tells operators) does not make");
                }
                return v;
            }
            if (from.getFieldRef() != null) {
                return switch (from.getFieldRef().getFieldPath()) {
                    case "metadata.name" -> name;
                    case "metadata.namespace" -> namespace;
                    case "status.podIP" -> ip;
                    default -> throw new AssertionError(name + ": fieldRef " + from.getFieldRef().getFieldPath() + " is not one the test fills");
                };
            }
            throw new AssertionError(name + ": " + e.getName() + " has a valueFrom the test does not fill");
        }

        /** Whether every long-running container's readiness probe passes now. */
        boolean ready() {
            for (Container c : KubeManifests.longRunning(template)) {
                if (c.getReadinessProbe() != null && !passes(c, c.getReadinessProbe())) {
                    return false;
                }
            }
            return processes.stream().allMatch(Process::isAlive);
        }

        private boolean passes(Container c, Probe probe) {
            try {
                if (probe.getHttpGet() != null) {
                    int port = port(c, probe.getHttpGet().getPort());
                    var res = HTTP.send(HttpRequest.newBuilder(URI.create("http://" + ip + ":" + port + probe.getHttpGet().getPath()))
                            .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.discarding());
                    return res.statusCode() >= 200 && res.statusCode() < 400;
                }
                if (probe.getTcpSocket() != null) {
                    try (var s = new Socket()) {
                        s.connect(new InetSocketAddress(ip, port(c, probe.getTcpSocket().getPort())), 1000);
                        return true;
                    }
                }
                throw new AssertionError(name + "/" + c.getName() + ": a probe the test does not run");
            } catch (IOException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }

        private int port(Container c, io.fabric8.kubernetes.api.model.IntOrString p) {
            if (p.getIntVal() != null) {
                return p.getIntVal();
            }
            return c.getPorts().stream().filter(cp -> p.getStrVal().equals(cp.getName())).findFirst()
                    .orElseThrow(() -> new AssertionError(name + "/" + c.getName() + ": probe port " + p.getStrVal() + " is no container port")).getContainerPort();
        }

        String logs() {
            var sb = new StringBuilder();
            for (Container c : KubeManifests.longRunning(template)) {
                try {
                    String log = Files.readString(root.resolve(c.getName() + ".log"));
                    sb.append("--- ").append(name).append('/').append(c.getName()).append(" (last 3,000 characters)\n")
                            .append(log.substring(Math.max(0, log.length() - 3000))).append('\n');
                } catch (IOException e) {
                    sb.append("--- ").append(name).append('/').append(c.getName()).append(": no log\n");
                }
            }
            return sb.toString();
        }

        void stop() {
            dev.isthmus.cli.local.Processes.stop(processes.stream().map(Process::toHandle).toList(), Duration.ofSeconds(10));
        }
    }

    static String imageName(String image) {
        String n = image.contains(":") ? image.substring(0, image.lastIndexOf(':')) : image;
        return n.substring(n.lastIndexOf('/') + 1);
    }

    /** Kubernetes' {@code $(VAR)} expansion of earlier variables; an unknown one stays as written. */
    static String expand(String value, Map<String, String> env) {
        Matcher m = Pattern.compile("\\$\\(([A-Za-z_][A-Za-z0-9_]*)\\)").matcher(value);
        var sb = new StringBuilder();
        while (m.find()) {
            m.appendReplacement(sb, Matcher.quoteReplacement(env.getOrDefault(m.group(1), m.group())));
        }
        m.appendTail(sb);
        return sb.toString();
    }

    /** The parts of a Dockerfile the test lays out and runs: FROM, COPY, WORKDIR, USER, ENV, ENTRYPOINT, CMD (exec form). */
    static final class Dockerfile {
        final List<String[]> copies = new ArrayList<>();
        List<String> entrypoint = List.of();
        List<String> cmd = List.of();
        String workdir;
        final Map<String, String> env = new LinkedHashMap<>();

        static Dockerfile read(Path file) throws IOException {
            if (!Files.exists(file)) {
                throw new AssertionError("no Dockerfile for the image: " + file);
            }
            var d = new Dockerfile();
            for (String line : Files.readAllLines(file)) {
                String l = line.strip();
                if (l.isEmpty() || l.startsWith("#")) {
                    continue;
                }
                String op = l.split("\\s+", 2)[0];
                String rest = l.substring(op.length()).strip();
                switch (op) {
                    case "FROM", "USER" -> {
                    }
                    case "COPY" -> {
                        String[] parts = rest.split("\\s+");
                        if (parts.length != 2 || parts[0].startsWith("--")) {
                            throw new AssertionError(file + ": COPY with other than one source and one destination: " + l);
                        }
                        d.copies.add(parts);
                    }
                    case "WORKDIR" -> d.workdir = rest;
                    case "ENV" -> {
                        int eq = rest.indexOf('=');
                        d.env.put(rest.substring(0, eq), rest.substring(eq + 1));
                    }
                    case "ENTRYPOINT" -> d.entrypoint = json(file, rest);
                    case "CMD" -> d.cmd = json(file, rest);
                    default -> throw new AssertionError(file + ": an instruction the test does not lay out: " + l);
                }
            }
            return d;
        }

        @SuppressWarnings("unchecked")
        private static List<String> json(Path file, String array) {
            if (!array.startsWith("[")) {
                throw new AssertionError(file + ": ENTRYPOINT and CMD must be in exec form (a JSON array): " + array);
            }
            return KubeManifests.SERIALIZATION.unmarshal(array, List.class);
        }

        /** The COPY lines' files under the container's root, hard-linked from the build output. */
        void layOut(Path context, java.util.function.Function<String, Path> local) throws IOException {
            for (String[] c : copies) {
                Path src = context.resolve(c[0]);
                if (!Files.exists(src)) {
                    throw new AssertionError("COPY " + c[0] + ": not in the build output (run the build first)");
                }
                Path dest = local.apply(c[1]);
                if (Files.isDirectory(src)) {
                    try (var files = Files.walk(src)) {
                        for (Path f : files.sorted(Comparator.naturalOrder()).toList()) {
                            Path to = dest.resolve(src.relativize(f).toString());
                            if (Files.isDirectory(f)) {
                                Files.createDirectories(to);
                            } else {
                                link(f, to);
                            }
                        }
                    }
                } else {
                    link(src, c[1].endsWith("/") ? dest.resolve(src.getFileName().toString()) : dest);
                }
            }
        }

        private static void link(Path from, Path to) throws IOException {
            Files.createDirectories(to.getParent());
            Files.deleteIfExists(to);
            try {
                Files.createLink(to, from);
            } catch (IOException | UnsupportedOperationException e) {
                Files.copy(from, to, StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }
}
