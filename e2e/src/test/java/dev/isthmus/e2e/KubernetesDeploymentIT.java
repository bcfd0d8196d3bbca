package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.cli.local.ControllerClient;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointBuilder;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSliceBuilder;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBinding;
import io.fabric8.kubernetes.api.model.rbac.PolicyRule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The Kubernetes manifests of {@code deploy/kubernetes}, as the overlay {@code us-east} makes them,
 * deployed: every pod of every workload (one replica each) runs as real processes laid out from the
 * images' Dockerfiles, with the manifests' environment, volumes, Services and probes
 * ({@link KubeCluster}), against fabric8's mock API server ({@link KubeApiServer}; no real Kubernetes
 * runs here), which this test feeds the Pods and EndpointSlices that Kubernetes' own controllers
 * would write. What this cannot check: the images themselves (no container engine: the base image
 * and the USER line are not exercised), the scheduler, kube-proxy, a real API server's RBAC
 * enforcement (the RBAC is checked here against the requests the components make), LoadBalancers.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class KubernetesDeploymentIT {

    static final Path HOME = LocalFederationExtension.home();
    static final Path DEPLOY = HOME.resolve("deploy/kubernetes");
    static final List<String> CLUSTERS = List.of("us-east", "eu-west");
    /** One Kubernetes cluster: its overlay's manifests, its API server, its pods, its Secrets. */
    record Region(String name, KubeManifests manifests, KubeApiServer api, KubeCluster cluster, Map<String, Map<String, String>> secrets) {
    }
    static final Map<String, Region> REGIONS = new java.util.LinkedHashMap<>();
    static Path dir;
    static Process watchdog;

    static String random() {
        byte[] b = new byte[24];
        new java.security.SecureRandom().nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    @BeforeAll
    static void deploy() throws Exception {
        dir = Files.createTempDirectory(HOME.resolve("e2e/target").toAbsolutePath(), "kubernetes-");
        watchdog = LocalFederationExtension.startWatchdog(dir);
        // The operator points the controllers at their policy repository: here the example one, in a local Git repository.
        Path policy = dir.resolve("policy.git");
        run(dir, "git", "init", "-q", "-b", "main", policy.toString());
        copyTree(HOME.resolve("deploy/gitops-example"), policy);
        run(policy, "git", "add", "-A");
        run(policy, "git", "-c", "user.name=test", "-c", "user.email=test@example.net", "commit", "-q", "-m", "example policy");
        int net = 77;
        for (String name : CLUSTERS) {
            var manifests = KubeManifests.overlay(DEPLOY.resolve("overlays/" + name));
            manifests.find(ConfigMap.class, "isthmus-system", "isthmus-cluster").orElseThrow().getData().put("ISTHMUS_POLICY_GIT_URL", "file://" + policy);
            var api = new KubeApiServer();
            // kubectl apply -k: every object of the overlay, into the cluster's API server.
            for (var o : manifests.objects) {
                api.client.resource(o).create();
            }
            var secrets = new java.util.HashMap<String, Map<String, String>>();
            var cluster = new KubeCluster(manifests, api, secrets, Files.createDirectories(dir.resolve(name)), HOME, "127.0." + net++);
            REGIONS.put(name, new Region(name, manifests, api, cluster, secrets));
            manifests.workloads().forEach(cluster::pod);
        }
        // The LoadBalancers' DNS names the overlays give (gateway.<cluster>..., nats.<cluster>...), and the
        // Secrets the README tells an operator to make: the credentials, and NATS gateway certificates from one CA.
        Path tls = Files.createDirectories(dir.resolve("nats-tls"));
        run(tls, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                "-days", "1", "-subj", "/CN=isthmus-nats-ca");
        for (Region r : REGIONS.values()) {
            for (Region other : REGIONS.values()) {
                r.cluster().external.put("gateway." + other.name() + ".mesh.example.net", Map.entry(other.cluster(), "isthmus-east-west-gateway"));
                r.cluster().external.put("nats." + other.name() + ".mesh.example.net", Map.entry(other.cluster(), "isthmus-nats-gateway"));
            }
            String natsIp = r.cluster().pods.stream().filter(p -> p.name.startsWith("isthmus-nats-")).findFirst().orElseThrow().ip;
            run(tls, "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", r.name() + ".key", "-out", r.name() + ".csr",
                    "-subj", "/CN=nats." + r.name());
            Files.writeString(tls.resolve(r.name() + ".ext"), "subjectAltName=DNS:nats." + r.name() + ".mesh.example.net,IP:" + natsIp + "\n"
                    + "extendedKeyUsage=serverAuth,clientAuth\n");
            run(tls, "openssl", "x509", "-req", "-in", r.name() + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
                    "-extfile", r.name() + ".ext", "-out", r.name() + ".crt");
            r.secrets().put("isthmus-system/isthmus-credentials", Map.of("admin-token", random(), "workload-token", random()));
            r.secrets().put("isthmus-system/isthmus-nats-gateway-tls", Map.of("tls.crt", Files.readString(tls.resolve(r.name() + ".crt")),
                    "tls.key", Files.readString(tls.resolve(r.name() + ".key")), "ca.crt", Files.readString(tls.resolve("ca.crt"))));
        }
        for (Region r : REGIONS.values()) {
            // What the API server holds about the pods (the kubelet's part): their labels, account and address.
            for (var pod : r.cluster().pods) {
                r.api().client.pods().inNamespace(pod.namespace).resource(new PodBuilder().withNewMetadata().withName(pod.name)
                        .withNamespace(pod.namespace).withLabels(pod.labels()).endMetadata().withSpec(pod.template.getSpec())
                        .withNewStatus().withPodIP(pod.ip).endStatus().build()).create();
            }
            publishEndpointSlices(r, false, Set.of());
            for (var pod : r.cluster().pods) {
                pod.start();
            }
        }
        var all = REGIONS.values().stream().flatMap(r -> r.cluster().pods.stream()).toList();
        Instant deadline = Instant.now().plus(Duration.ofSeconds(180));
        while (!all.stream().allMatch(KubeCluster.Pod::ready)) {
            if (Instant.now().isAfter(deadline)) {
                var sb = new StringBuilder("pods not ready after 180 s:\n");
                all.stream().filter(p -> !p.ready()).forEach(p -> sb.append(p.logs()));
                throw new AssertionError(sb.toString());
            }
            Thread.sleep(500);
        }
        // The EndpointSlice controller's part: the Services' endpoints, ready now that the pods are.
        for (Region r : REGIONS.values()) {
            publishEndpointSlices(r, true, Set.of());
        }
    }

    /** Runs a command (git, openssl) in a directory; it must succeed. */
    static void run(Path where, String... argv) throws Exception {
        var p = new ProcessBuilder(argv).directory(where.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), String.join(" ", argv) + ": " + out);
    }

    /** Writes each meshed Service's EndpointSlice as Kubernetes would: its ports by name with their target numbers, the pods it selects. */
    static void publishEndpointSlices(Region r, boolean ready, Set<String> notReady) {
        for (Service svc : r.manifests().all(Service.class).filter(s -> s.getMetadata().getNamespace().equals("shop")).toList()) {
            var selected = r.cluster().pods.stream().filter(p -> p.namespace.equals("shop") && KubeManifests.selects(svc.getSpec().getSelector(), p.labels())).toList();
            assertTrue(!selected.isEmpty(), "Service " + svc.getMetadata().getName() + " selects no pod");
            var slice = new EndpointSliceBuilder().withNewMetadata().withName(svc.getMetadata().getName() + "-k8s").withNamespace("shop")
                    .addToLabels("kubernetes.io/service-name", svc.getMetadata().getName()).endMetadata().withAddressType("IPv4");
            for (var port : svc.getSpec().getPorts()) {
                int target = KubeManifests.targetPort(svc, port.getPort(), selected.get(0).template).orElseThrow(() -> new AssertionError(
                        "Service " + svc.getMetadata().getName() + " port " + port.getPort() + " targets no container port"));
                slice.addNewPort().withName(port.getName()).withPort(target).withAppProtocol(port.getAppProtocol()).withProtocol("TCP").endPort();
            }
            for (var pod : selected) {
                slice.addToEndpoints(new EndpointBuilder().withAddresses(pod.ip).withNewConditions().withReady(ready && !notReady.contains(pod.name)).endConditions()
                        .withNewTargetRef().withKind("Pod").withName(pod.name).withNamespace("shop").endTargetRef().build());
            }
            EndpointSlice built = slice.build();
            r.api().client.discovery().v1().endpointSlices().inNamespace("shop").resource(built).createOr(x -> x.update());
        }
    }

    static void copyTree(Path from, Path to) throws Exception {
        try (var files = Files.walk(from)) {
            for (Path f : files.toList()) {
                Path t = to.resolve(from.relativize(f).toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(t);
                } else {
                    Files.copy(f, t);
                }
            }
        }
    }

    @AfterAll
    static void undeploy() {
        for (Region r : REGIONS.values()) {
            r.cluster().close();
            r.api().close();
        }
        if (watchdog != null) {
            watchdog.destroy();
        }
    }

    static KubeCluster.Pod pod(String region, String prefix) {
        return REGIONS.get(region).cluster().pods.stream().filter(p -> p.name.startsWith(prefix + "-")).findFirst().orElseThrow();
    }

    static ControllerClient controller(String region) {
        return new ControllerClient(java.net.URI.create("http://" + pod(region, "isthmus-controller").ip + ":8080"),
                REGIONS.get(region).secrets().get("isthmus-system/isthmus-credentials").get("admin-token"));
    }

    @Test
    @Order(1)
    void everyKustomizationListsEveryManifestBesideIt() throws Exception {
        for (Path d : List.of(DEPLOY.resolve("base"), DEPLOY.resolve("shop"))) {
            String k = Files.readString(d.resolve("kustomization.yaml"));
            try (var files = Files.list(d)) {
                for (Path f : files.filter(f -> f.toString().endsWith(".yaml") && !f.getFileName().toString().equals("kustomization.yaml")).toList()) {
                    assertTrue(k.contains("- " + f.getFileName()), d + "/kustomization.yaml does not list " + f.getFileName());
                }
            }
        }
        // Both overlays build, and differ only where a cluster does.
        var east = KubeManifests.overlay(DEPLOY.resolve("overlays/us-east"));
        var west = KubeManifests.overlay(DEPLOY.resolve("overlays/eu-west"));
        assertEquals(east.objects.size(), west.objects.size());
        assertEquals("eu-west", west.find(ConfigMap.class, "isthmus-system", "isthmus-cluster").orElseThrow().getData().get("ISTHMUS_CLUSTER_NAME"));
        assertEquals("eu-west.acme.isthmus", west.find(ConfigMap.class, "shop", "isthmus-sidecar").orElseThrow().getData().get("ISTHMUS_TRUST_DOMAIN"));
        assertTrue(west.find(ConfigMap.class, "isthmus-system", "isthmus-nats-gateways").orElseThrow().getData().get("gateways.conf").contains("us-east"));
    }

    @Test
    @Order(2)
    void everyServiceAndBudgetSelectsPodsServicesTargetTheirPortsAndEveryAccountExists() {
        var manifests = REGIONS.get("us-east").manifests();
        for (Service svc : manifests.all(Service.class).toList()) {
            var templates = manifests.workloads().stream().filter(w -> w.namespace().equals(svc.getMetadata().getNamespace())
                    && KubeManifests.selects(svc.getSpec().getSelector(), w.template().getMetadata().getLabels())).toList();
            assertTrue(!templates.isEmpty(), "Service " + svc.getMetadata().getName() + " selects no workload's pods");
            for (var port : svc.getSpec().getPorts()) {
                for (var w : templates) {
                    assertTrue(KubeManifests.targetPort(svc, port.getPort(), w.template()).isPresent(),
                            "Service " + svc.getMetadata().getName() + " port " + port.getName() + " targets no container port of " + w.name());
                }
            }
        }
        for (var pdb : manifests.all(io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget.class).toList()) {
            assertTrue(manifests.workloads().stream().anyMatch(w -> w.namespace().equals(pdb.getMetadata().getNamespace())
                    && KubeManifests.selects(pdb.getSpec().getSelector().getMatchLabels(), w.template().getMetadata().getLabels())),
                    "PodDisruptionBudget " + pdb.getMetadata().getName() + " selects no workload's pods");
        }
        for (var w : manifests.workloads()) {
            assertTrue(KubeManifests.selects(w.selector(), w.template().getMetadata().getLabels()), w.name() + ": its selector does not select its pods");
            String sa = w.template().getSpec().getServiceAccountName();
            if (sa != null) {
                assertTrue(manifests.find(ServiceAccount.class, w.namespace(), sa).isPresent(), w.name() + ": service account " + sa + " is not defined");
            }
        }
    }

    @Test
    @Order(3)
    void theShopCallsGoSidecarToSidecarOverMtlsWithTheCallersIdentity() throws Exception {
        var orders = pod("us-east", "order-processing");
        String body;
        try {
            body = Http.await("http://" + orders.ip + ":8080/orders/checkout", Duration.ofSeconds(60), b -> b.contains("\"upstreamStatus\":200"));
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "\ncontroller's services: "
                    + Http.get("http://" + pod("us-east", "isthmus-controller").ip + ":8080/api/v1/services").body(), e);
        }
        assertTrue(body.contains("\"service\":\"product-catalog\"") && body.contains("\"cluster\":\"us-east\""), body);
        assertTrue(body.contains("\"caller\":\"spiffe://us-east.acme.isthmus/ns/shop/sa/order-processing\""),
                "the catalogue's sidecar passes the caller's identity, which the trust bridge gave for its service-account token: " + body);
        // The catalogue's second Service port (grpc 9090 → the sidecar's 15016), named by the Service's port.
        String grpc = Http.await("http://" + orders.ip + ":8080/orders/checkout?catalog=grpc", Duration.ofSeconds(30), b -> b.contains("\"upstreamStatus\":\"OK\""));
        assertTrue(grpc.contains("\"upstreamProtocol\":\"grpc\"") && grpc.contains("\"caller\":\"spiffe://us-east.acme.isthmus/ns/shop/sa/order-processing\""), grpc);
        String dump = Http.get("http://" + orders.ip + ":15000/config_dump").body();
        assertTrue(dump.contains("outbound|9090|v1|product-catalog.shop.svc.cluster.local") && dump.contains("outbound|80|v2|product-catalog.shop.svc.cluster.local"),
                "clusters by Service port and by the pods' version label: " + dump.substring(0, Math.min(dump.length(), 3000)));
    }

    @Test
    @Order(4)
    void theExamplePolicysCanarySendsSomeCallsToTheV2Pod() throws Exception {
        var orders = pod("us-east", "order-processing");
        Set<String> instances = new TreeSet<>();
        for (int i = 0; i < 300 && !(instances.stream().anyMatch(s -> s.startsWith("product-catalog-v2-"))
                && instances.stream().anyMatch(s -> !s.startsWith("product-catalog-v2-"))); i++) {
            String body = Http.get("http://" + orders.ip + ":8080/orders/checkout").body();
            var m = java.util.regex.Pattern.compile("\"instance\":\"(product-catalog[^\"]*)\"").matcher(body);
            if (m.find()) {
                instances.add(m.group(1));
            }
        }
        assertTrue(instances.stream().anyMatch(s -> s.startsWith("product-catalog-v2-")) && instances.stream().anyMatch(s -> !s.startsWith("product-catalog-v2-")),
                "v1 and v2 pods both served (the example policy splits 90/10 by the pods' version label): " + instances);
    }

    @Test
    @Order(5)
    void aClusterJoinsByRestCallsCrossToTheOtherClustersGatewayWhenItsOwnCatalogueIsDownAndNotWhileThatOneIsDrained() throws Exception {
        // Join eu-west to us-east's federation: a token from us-east's controller, given to eu-west's.
        String token = controller("us-east").post("/api/v1/join-tokens", "{\"cluster\":\"eu-west\"}").path("token").asText();
        controller("eu-west").post("/api/v1/federation/join", "{\"token\":" + ControllerClient.quote(token) + "}");
        Http.await("http://" + pod("us-east", "isthmus-controller").ip + ":8080/api/v1/federation", Duration.ofSeconds(30),
                b -> b.contains("\"eu-west\"") && b.contains("Active"));
        // eu-west's catalogue pods go unready (their EndpointSlice says so): eu-west's orders cross to us-east,
        // through us-east's east-west gateway at the LoadBalancer address us-east announces, mTLS end to end.
        var west = REGIONS.get("eu-west");
        publishEndpointSlices(west, true, west.cluster().pods.stream().filter(p -> p.name.startsWith("product-catalog")).map(p -> p.name)
                .collect(java.util.stream.Collectors.toSet()));
        var orders = pod("eu-west", "order-processing");
        String body = Http.await("http://" + orders.ip + ":8080/orders/checkout", Duration.ofSeconds(60),
                b -> b.contains("\"upstreamStatus\":200") && b.contains("\"cluster\":\"us-east\""));
        assertTrue(body.contains("\"caller\":\"spiffe://eu-west.acme.isthmus/ns/shop/sa/order-processing\""),
                "us-east's catalogue sees eu-west's caller, verified against the federated roots: " + body);
        String gateway = Http.get("http://" + pod("us-east", "isthmus-east-west-gateway").ip + ":15000/metrics").body();
        assertTrue(gateway.lines().anyMatch(l -> l.startsWith("isthmus_gateway_connections_total") && l.contains("product-catalog.shop")),
                "the call went through us-east's gateway: " + gateway.lines().filter(l -> l.startsWith("isthmus_gateway")).toList());
        // A drill: us-east drained (isthmus drain through its controller). eu-west, with no catalogue of its own
        // ready, then has nowhere to send the call, and says so; once the drain ends, the calls cross again.
        controller("us-east").post("/api/v1/federation/drain", "{\"duration\":\"5m\"}");
        Http.await("http://" + pod("eu-west", "isthmus-controller").ip + ":8080/api/v1/federation", Duration.ofSeconds(10),
                b -> b.contains("Draining"));
        Http.await("http://" + orders.ip + ":8080/orders/checkout", Duration.ofSeconds(10), b -> b.contains("\"upstreamStatus\":503"));
        controller("us-east").delete("/api/v1/federation/drain");
        Http.await("http://" + orders.ip + ":8080/orders/checkout", Duration.ofSeconds(20),
                b -> b.contains("\"upstreamStatus\":200") && b.contains("\"cluster\":\"us-east\""));
        // The NATS gateway link between the clusters runs over TLS with the certificates from the Secret.
        String gatewayz = Http.get("http://" + pod("us-east", "isthmus-nats").ip + ":8222/gatewayz").body();
        assertTrue(gatewayz.contains("\"eu-west\"") && gatewayz.contains("\"tls_version\""), gatewayz);
    }

    @Test
    @Order(6)
    void everyRequestToTheApiServerIsOneTheManifestsRbacGrants() {
        for (Region r : REGIONS.values()) {
            checkRbac(r);
        }
    }

    static void checkRbac(Region region) {
        var manifests = region.manifests();
        var api = region.api();
        Map<String, List<PolicyRule>> rules = new java.util.HashMap<>();
        for (ClusterRoleBinding b : manifests.all(ClusterRoleBinding.class).toList()) {
            List<PolicyRule> granted = switch (b.getRoleRef().getName()) {
                // Kubernetes' own role for delegated authentication.
                case "system:auth-delegator" -> List.of(new PolicyRule(List.of("authentication.k8s.io"), null, null, List.of("tokenreviews"), List.of("create")),
                        new PolicyRule(List.of("authorization.k8s.io"), null, null, List.of("subjectaccessreviews"), List.of("create")));
                default -> manifests.find(ClusterRole.class, null, b.getRoleRef().getName())
                        .orElseThrow(() -> new AssertionError("ClusterRoleBinding " + b.getMetadata().getName() + " binds an undefined role")).getRules();
            };
            for (var s : b.getSubjects()) {
                rules.computeIfAbsent(s.getNamespace() + "/" + s.getName(), k -> new ArrayList<>()).addAll(granted);
            }
        }
        Set<String> seen = new LinkedHashSet<>();
        for (var call : api.calls) {
            if (call.account().equals(KubeApiServer.ADMIN)) {
                continue; // the test's own client: kubectl's and the kubelet's part
            }
            String[] what = verbGroupResource(call.method(), call.path());
            seen.add(call.account() + " " + what[0] + " " + what[1] + "/" + what[2]);
            boolean allowed = rules.getOrDefault(call.account(), List.of()).stream().anyMatch(r -> r.getVerbs().contains(what[0])
                    && r.getApiGroups().contains(what[1]) && r.getResources().contains(what[2]));
            assertTrue(allowed, call.account() + " made " + call.method() + " " + call.path() + " (" + String.join(" ", what)
                    + "), which its RBAC does not grant");
        }
        assertTrue(seen.contains("isthmus-system/isthmus-controller watch discovery.k8s.io/endpointslices"), seen.toString());
        assertTrue(seen.contains("isthmus-system/isthmus-controller watch /pods"), seen.toString());
        assertTrue(seen.contains("isthmus-system/isthmus-trust-bridge create authentication.k8s.io/tokenreviews"), seen.toString());
        // Each sidecar's token was reviewed for the audience its projected volume asks for.
        assertTrue(api.reviews.size() >= 4 && api.reviews.stream().allMatch(r -> List.of("isthmus-trust-bridge").equals(r.getSpec().getAudiences())),
                api.reviews.stream().map(r -> String.valueOf(r.getSpec().getAudiences())).toList().toString());
    }

    /** verb, API group ("" for the core group), resource of a request, as RBAC names them. */
    static String[] verbGroupResource(String method, String path) {
        String p = path.contains("?") ? path.substring(0, path.indexOf('?')) : path;
        String query = path.contains("?") ? path.substring(path.indexOf('?') + 1) : "";
        List<String> parts = new ArrayList<>(List.of(p.substring(1).split("/")));
        String group;
        if (parts.get(0).equals("api")) {
            group = "";
            parts = parts.subList(2, parts.size());
        } else {
            group = parts.get(1);
            parts = parts.subList(3, parts.size());
        }
        if (parts.size() >= 2 && parts.get(0).equals("namespaces")) {
            parts = parts.subList(2, parts.size());
        }
        String resource = parts.get(0);
        boolean named = parts.size() > 1;
        String verb = switch (method) {
            case "GET" -> query.contains("watch=true") ? "watch" : named ? "get" : "list";
            case "POST" -> "create";
            case "PUT" -> "update";
            case "PATCH" -> "patch";
            case "DELETE" -> "delete";
            default -> method.toLowerCase();
        };
        return new String[] {verb, group, resource};
    }
}
