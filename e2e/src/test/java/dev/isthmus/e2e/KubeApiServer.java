package dev.isthmus.e2e;

import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.client.NamespacedKubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesCrudDispatcher;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.Context;
import io.fabric8.mockwebserver.MockWebServer;
import io.fabric8.mockwebserver.http.MockResponse;
import io.fabric8.mockwebserver.http.RecordedRequest;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The Kubernetes API server of {@link KubernetesDeploymentIT}: fabric8's mock server in CRUD mode
 * (it keeps what is created, lists and watches work), since no real API server can run here. On top of
 * it, what CRUD mode cannot do:
 * <ul>
 *   <li>every request is recorded with the service account whose bearer token made it, so the test
 *       can check each against the RBAC the manifests grant;</li>
 *   <li>TokenReview answers as the API server would for the service-account tokens this server
 *       issued ({@link #issueToken}): authenticated as {@code system:serviceaccount:<ns>:<sa>} when the
 *       review's audiences include the token's, refused otherwise.</li>
 * </ul>
 */
final class KubeApiServer implements AutoCloseable {

    /** One API request: who made it (namespace/account, or {@code anonymous}), its method and path. */
    record Call(String account, String method, String path) {
    }

    private final Map<String, String> accountByToken = new ConcurrentHashMap<>();
    private final Map<String, String> audienceByToken = new ConcurrentHashMap<>();
    final List<Call> calls = new CopyOnWriteArrayList<>();
    final List<TokenReview> reviews = new CopyOnWriteArrayList<>();
    private final KubernetesMockServer server;
    final NamespacedKubernetesClient client;

    KubeApiServer() throws Exception {
        var dispatcher = new KubernetesCrudDispatcher() {
            @Override
            public MockResponse dispatch(RecordedRequest request) {
                String auth = request.getHeader("Authorization");
                String token = auth != null && auth.startsWith("Bearer ") ? auth.substring(7) : "";
                calls.add(new Call(accountByToken.getOrDefault(token, "anonymous"), request.getMethod(), request.getPath()));
                if (request.getMethod().equals("POST") && request.getPath().startsWith("/apis/authentication.k8s.io/v1/tokenreviews")) {
                    return review(request.getUtf8Body());
                }
                return super.dispatch(request);
            }
        };
        server = new KubernetesMockServer(new Context(), new MockWebServer(), new HashMap<>(), dispatcher, false);
        server.init(InetAddress.getByName("127.0.0.1"), 0);
        // The test's own client (kubectl's part) is the cluster admin; every other caller must be a service account.
        accountByToken.put(ADMIN_TOKEN, ADMIN);
        client = new io.fabric8.kubernetes.client.KubernetesClientBuilder().withConfig(new io.fabric8.kubernetes.client.ConfigBuilder()
                .withMasterUrl(url()).withOauthToken(ADMIN_TOKEN).withNamespace("default").build()).build().adapt(NamespacedKubernetesClient.class);
    }

    static final String ADMIN = "cluster-admin";
    private static final String ADMIN_TOKEN = "cluster-admin-" + java.util.UUID.randomUUID();

    String url() {
        return "http://127.0.0.1:" + server.getPort();
    }

    /** A JWT-shaped token for a service account, as the kubelet projects it; {@code audience} as its volume says. */
    String issueToken(String namespace, String account, String audience) {
        String payload = "{\"sub\":\"system:serviceaccount:" + namespace + ":" + account + "\",\"aud\":[\"" + audience + "\"],\"n\":\""
                + java.util.UUID.randomUUID() + "\"}";
        var b64 = Base64.getUrlEncoder().withoutPadding();
        String token = b64.encodeToString("{\"alg\":\"RS256\"}".getBytes(StandardCharsets.UTF_8)) + "."
                + b64.encodeToString(payload.getBytes(StandardCharsets.UTF_8)) + "." + b64.encodeToString("not-signed".getBytes(StandardCharsets.UTF_8));
        accountByToken.put(token, namespace + "/" + account);
        audienceByToken.put(token, audience == null ? "" : audience);
        return token;
    }

    private MockResponse review(String body) {
        TokenReview asked = KubeManifests.SERIALIZATION.unmarshal(body, TokenReview.class);
        reviews.add(asked);
        String token = asked.getSpec().getToken();
        String account = accountByToken.get(token);
        List<String> audiences = asked.getSpec().getAudiences() == null ? List.of() : asked.getSpec().getAudiences();
        var status = new TokenReviewBuilder(asked).withNewStatus();
        if (account == null) {
            status.withAuthenticated(false).withError("invalid bearer token");
        } else if (!audiences.isEmpty() && !audiences.contains(audienceByToken.get(token))) {
            status.withAuthenticated(false).withError("token audiences " + audienceByToken.get(token) + " is invalid for the target audiences " + audiences);
        } else {
            String[] nsSa = account.split("/");
            status.withAuthenticated(true).withAudiences(audiences).withNewUser()
                    .withUsername("system:serviceaccount:" + nsSa[0] + ":" + nsSa[1]).endUser();
        }
        return new MockResponse().setResponseCode(201).setHeader("Content-Type", "application/json")
                .setBody(KubeManifests.SERIALIZATION.asJson(status.endStatus().build()));
    }

    @Override
    public void close() {
        client.close();
        server.destroy();
    }
}
