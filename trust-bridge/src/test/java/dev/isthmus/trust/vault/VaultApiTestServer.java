package dev.isthmus.trust.vault;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigInteger;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;

/**
 * A <b>Vault HTTP API test server</b>: not Vault, but the part of Vault's documented HTTP API the
 * trust bridge uses, written from Vault's API documentation (developer.hashicorp.com/vault/api-docs),
 * with real X.509 signing (BouncyCastle), so the Vault backend runs against HTTP answers shaped like
 * Vault's on a machine where Vault cannot run. Implemented:
 * <ul>
 *   <li>{@code GET /v1/sys/health} without a token (200, active, unsealed);</li>
 *   <li>{@code X-Vault-Token} on every other request (403 {@code permission denied} otherwise);</li>
 *   <li>{@code POST /v1/auth/approle/login} ({@code role_id}, {@code secret_id}) → {@code auth.client_token};</li>
 *   <li>{@code GET /v1/sys/mounts}, {@code POST /v1/sys/mounts/:path} ({@code type}),
 *       {@code POST /v1/sys/mounts/:path/tune} ({@code max_lease_ttl});</li>
 *   <li>PKI: {@code GET /v1/:mount/cert/ca} (the default issuer's), {@code POST /v1/:mount/root/generate/internal}
 *       ({@code common_name}, {@code key_type} ec only, {@code ttl}; the first issuer becomes the default),
 *       {@code POST /v1/:mount/root/rotate/internal} (a new issuer, not the default), {@code LIST /v1/:mount/issuers}
 *       ({@code keys}, {@code key_info}), {@code GET /v1/:mount/issuer/:ref/json}, {@code DELETE /v1/:mount/issuer/:ref},
 *       {@code GET/POST /v1/:mount/config/issuers} ({@code default}), {@code POST /v1/:mount/roles/:name}
 *       ({@code allowed_uri_sans} glob, {@code max_ttl}), {@code POST /v1/:mount/sign/:role}
 *       ({@code csr}, {@code uri_sans}, {@code ttl}) → {@code certificate}, {@code issuing_ca},
 *       {@code ca_chain}, {@code serial_number}, {@code expiration}; a URI SAN outside the role's glob
 *       is a 400 with Vault's error text;</li>
 *   <li>KV v2: {@code POST/GET /v1/:mount/data/:path} ({@code data} → {@code data.data},
 *       {@code data.metadata.version}); 404 {@code {"errors":[]}} when absent.</li>
 * </ul>
 * Errors are {@code {"errors": ["..."]}} with Vault's status codes. {@link #stop} makes it unreachable
 * and {@link #restart} brings it back on the same port with the same state, for failure tests.
 */
public final class VaultApiTestServer implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final SecureRandom RANDOM = new SecureRandom();

    private record Pki(String id, String name, KeyPair key, X509Certificate ca) {
    }

    /** A PKI mount's issuers (Vault 1.11+ keeps several) and which one is the default. */
    private static final class PkiMount {
        final Map<String, Pki> issuers = new java.util.LinkedHashMap<>();
        volatile String defaultId;

        synchronized Pki defaultIssuer() {
            return defaultId == null ? null : issuers.get(defaultId);
        }
    }

    private volatile HttpServer server;
    private final int port;
    private final String rootToken;
    private final Set<String> tokens = ConcurrentHashMap.newKeySet();
    private final Map<String, String> mounts = new ConcurrentHashMap<>();
    private final Map<String, PkiMount> pkis = new ConcurrentHashMap<>();
    private final Map<String, JsonNode> roles = new ConcurrentHashMap<>();
    private final Map<String, ObjectNode> kv = new ConcurrentHashMap<>();
    private final Map<String, String> appRoles = new ConcurrentHashMap<>();
    private volatile int signed;

    public VaultApiTestServer(String rootToken) throws IOException {
        this.rootToken = rootToken;
        tokens.add(rootToken);
        mounts.put("secret/", "kv");
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/v1/", this::handle);
        server.start();
        port = server.getAddress().getPort();
    }

    /** Serves again on the same port, with the same state (Vault back after an outage). */
    public synchronized void restart() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        server.createContext("/v1/", this::handle);
        server.start();
    }

    public String address() {
        return "http://127.0.0.1:" + port;
    }

    /** Registers an AppRole whose login gives a token. */
    public void addAppRole(String roleId, String secretId) {
        appRoles.put(roleId, secretId);
    }

    public int signedCount() {
        return signed;
    }

    public void stop() {
        server.stop(0);
    }

    @Override
    public void close() {
        stop();
    }

    private void handle(HttpExchange ex) throws IOException {
        try {
            String path = ex.getRequestURI().getPath().substring("/v1/".length());
            String method = ex.getRequestMethod();
            JsonNode body = method.equals("GET") ? JSON.createObjectNode() : readBody(ex);
            if (path.equals("sys/health")) { // unauthenticated, as in Vault
                var out = JSON.createObjectNode();
                out.put("initialized", true).put("sealed", false).put("standby", false).put("version", "api-test-server")
                        .put("server_time_utc", Instant.now().getEpochSecond());
                send(ex, 200, out);
                return;
            }
            if (path.equals("auth/approle/login")) {
                String secret = appRoles.get(body.path("role_id").asText());
                if (secret == null || !secret.equals(body.path("secret_id").asText())) {
                    error(ex, 400, "invalid role or secret ID");
                    return;
                }
                String token = "hvs." + UUID.randomUUID();
                tokens.add(token);
                var out = JSON.createObjectNode();
                out.put("request_id", UUID.randomUUID().toString()).put("lease_id", "").put("renewable", false).put("lease_duration", 0);
                out.putNull("data");
                out.putNull("wrap_info");
                out.putNull("warnings");
                var auth = out.putObject("auth");
                auth.put("client_token", token).put("accessor", "acc." + UUID.randomUUID()).put("lease_duration", 3600)
                        .put("renewable", true).put("token_type", "service").put("orphan", true).put("entity_id", "");
                auth.putArray("policies").add("default").add("isthmus-trust-bridge");
                auth.putArray("token_policies").add("default").add("isthmus-trust-bridge");
                auth.putObject("metadata").put("role_name", body.path("role_id").asText());
                send(ex, 200, out);
                return;
            }
            String token = ex.getRequestHeaders().getFirst("X-Vault-Token");
            if (token == null || !tokens.contains(token)) {
                error(ex, 403, "permission denied");
                return;
            }
            route(ex, method, path, body);
        } catch (Exception e) {
            error(ex, 500, "internal error: " + e);
        }
    }

    private void route(HttpExchange ex, String method, String path, JsonNode body) throws Exception {
        String[] p = path.split("/");
        if (path.equals("sys/mounts") && method.equals("GET")) {
            var out = JSON.createObjectNode();
            var data = out.putObject("data");
            mounts.forEach((m, type) -> {
                out.putObject(m).put("type", type);
                data.putObject(m).put("type", type);
            });
            send(ex, 200, out);
        } else if (p.length >= 3 && p[0].equals("sys") && p[1].equals("mounts")) {
            String mount = p[2] + "/";
            if (p.length == 4 && p[3].equals("tune")) {
                if (!mounts.containsKey(mount)) {
                    error(ex, 400, "no mount at " + mount);
                    return;
                }
                send(ex, 204, null);
            } else if (mounts.containsKey(mount)) {
                error(ex, 400, "path is already in use at " + mount);
            } else {
                mounts.put(mount, body.path("type").asText());
                send(ex, 204, null);
            }
        } else if (p.length >= 2 && "pki".equals(mounts.get(p[0] + "/"))) {
            String query = ex.getRequestURI().getQuery();
            pki(ex, query != null && query.contains("list=true") && method.equals("GET") ? "LIST" : method, p, body);
        } else if (p.length >= 3 && "kv".equals(mounts.get(p[0] + "/")) && p[1].equals("data")) {
            String key = path;
            if (method.equals("GET")) {
                ObjectNode entry = kv.get(key);
                if (entry == null) {
                    send(ex, 404, JSON.createObjectNode().set("errors", JSON.createArrayNode()));
                    return;
                }
                send(ex, 200, JSON.createObjectNode().set("data", entry));
            } else {
                var entry = JSON.createObjectNode();
                entry.set("data", body.path("data"));
                int version = kv.containsKey(key) ? kv.get(key).path("metadata").path("version").asInt() + 1 : 1;
                entry.putObject("metadata").put("version", version).put("created_time", Instant.now().toString());
                kv.put(key, entry);
                var out = JSON.createObjectNode();
                out.putObject("data").put("version", version);
                send(ex, 200, out);
            }
        } else {
            error(ex, 404, "no handler for route \"" + path + "\". route entry not found.");
        }
    }

    private void pki(HttpExchange ex, String method, String[] p, JsonNode body) throws Exception {
        String mount = p[0];
        String rest = String.join("/", java.util.Arrays.copyOfRange(p, 1, p.length));
        PkiMount m = pkis.computeIfAbsent(mount, k -> new PkiMount());
        Pki pki = m.defaultIssuer();
        if (rest.equals("cert/ca") && method.equals("GET")) {
            var out = JSON.createObjectNode();
            out.putObject("data").put("certificate", pki == null ? "" : pem(pki.ca()));
            send(ex, 200, out);
        } else if (rest.equals("root/generate/internal") || rest.equals("root/rotate/internal")) {
            if (!body.path("key_type").asText("rsa").equals("ec")) {
                error(ex, 400, "this test server generates EC roots only");
                return;
            }
            var g = KeyPairGenerator.getInstance("EC");
            g.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair key = g.generateKeyPair();
            Instant now = Instant.now();
            var b = new JcaX509v3CertificateBuilder(new X500Name("CN=" + body.path("common_name").asText()), BigInteger.valueOf(RANDOM.nextLong() & Long.MAX_VALUE),
                    Date.from(now.minusSeconds(60)), Date.from(now.plus(duration(body.path("ttl").asText("8760h")))),
                    new X500Name("CN=" + body.path("common_name").asText()), key.getPublic());
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
            X509Certificate ca = new JcaX509CertificateConverter().getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(key.getPrivate())));
            String id = UUID.randomUUID().toString();
            var issuer = new Pki(id, body.path("issuer_name").asText(""), key, ca);
            synchronized (m) {
                m.issuers.put(id, issuer);
                // generate makes the first issuer the default; rotate never changes the default
                if (m.defaultId == null && rest.startsWith("root/generate")) {
                    m.defaultId = id;
                }
            }
            var out = JSON.createObjectNode();
            out.putObject("data").put("certificate", pem(ca)).put("issuing_ca", pem(ca)).put("serial_number", ca.getSerialNumber().toString(16))
                    .put("issuer_id", id).put("issuer_name", issuer.name());
            send(ex, 200, out);
        } else if (rest.equals("issuers") && method.equals("LIST")) {
            var out = JSON.createObjectNode();
            var data = out.putObject("data");
            var keys = data.putArray("keys");
            var info = data.putObject("key_info");
            synchronized (m) {
                m.issuers.values().forEach(i -> {
                    keys.add(i.id());
                    info.putObject(i.id()).put("issuer_name", i.name()).put("is_default", i.id().equals(m.defaultId));
                });
            }
            if (keys.isEmpty()) {
                send(ex, 404, JSON.createObjectNode().set("errors", JSON.createArrayNode()));
                return;
            }
            send(ex, 200, out);
        } else if (p.length >= 3 && p[1].equals("issuer")) {
            Pki issuer;
            synchronized (m) {
                issuer = p[2].equals("default") ? m.defaultIssuer() : m.issuers.get(p[2]);
            }
            if (issuer == null) {
                error(ex, 400, "unable to find PKI issuer for reference: " + p[2]);
            } else if (method.equals("DELETE")) {
                synchronized (m) {
                    m.issuers.remove(issuer.id());
                    if (issuer.id().equals(m.defaultId)) {
                        m.defaultId = null;
                    }
                }
                send(ex, 204, null);
            } else {
                var out = JSON.createObjectNode();
                var data = out.putObject("data");
                data.put("issuer_id", issuer.id()).put("issuer_name", issuer.name()).put("certificate", pem(issuer.ca()));
                data.putArray("ca_chain").add(pem(issuer.ca()));
                send(ex, 200, out);
            }
        } else if (rest.equals("config/issuers")) {
            if (!method.equals("GET")) {
                String ref = body.path("default").asText();
                synchronized (m) {
                    if (!m.issuers.containsKey(ref)) {
                        error(ex, 400, "unable to find PKI issuer for reference: " + ref);
                        return;
                    }
                    m.defaultId = ref;
                }
            }
            var out = JSON.createObjectNode();
            out.putObject("data").put("default", m.defaultId == null ? "" : m.defaultId).put("default_follows_latest_issuer", false);
            send(ex, 200, out);
        } else if (p.length == 3 && p[1].equals("roles")) {
            if (method.equals("GET")) {
                JsonNode role = roles.get(mount + "/" + p[2]);
                if (role == null) {
                    error(ex, 404, "");
                } else {
                    send(ex, 200, JSON.createObjectNode().set("data", role));
                }
            } else {
                roles.put(mount + "/" + p[2], body);
                send(ex, 204, null);
            }
        } else if (p.length == 3 && p[1].equals("sign")) {
            JsonNode role = roles.get(mount + "/" + p[2]);
            if (role == null) {
                error(ex, 400, "unknown role: " + p[2]);
                return;
            }
            if (pki == null) {
                error(ex, 400, "no default issuer currently configured");
                return;
            }
            PKCS10CertificationRequest csr;
            try (var parser = new PEMParser(new StringReader(body.path("csr").asText()))) {
                Object o = parser.readObject();
                if (!(o instanceof PKCS10CertificationRequest r)) {
                    error(ex, 400, "certificate request could not be parsed");
                    return;
                }
                csr = r;
            }
            String uri = body.path("uri_sans").asText();
            String allowed = role.path("allowed_uri_sans").asText();
            if (!glob(allowed, uri)) {
                error(ex, 400, "URI Subject Alternative Names are not allowed in this request: " + uri);
                return;
            }
            Duration ttl = duration(body.path("ttl").asText(role.path("max_ttl").asText("24h")));
            Duration max = duration(role.path("max_ttl").asText("24h"));
            if (ttl.compareTo(max) > 0) {
                ttl = max;
            }
            Instant now = Instant.now();
            var b = new JcaX509v3CertificateBuilder(pki.ca(), BigInteger.valueOf(RANDOM.nextLong() & Long.MAX_VALUE),
                    Date.from(now.minusSeconds(30)), Date.from(now.plus(ttl)), new X500Name(""),
                    new JcaPEMKeyConverter().getPublicKey(csr.getSubjectPublicKeyInfo()));
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyAgreement));
            b.addExtension(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}));
            b.addExtension(Extension.subjectAlternativeName, true, new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, uri)));
            X509Certificate cert = new JcaX509CertificateConverter().getCertificate(
                    b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(pki.key().getPrivate())));
            signed++;
            var out = JSON.createObjectNode();
            var data = out.putObject("data");
            data.put("certificate", pem(cert)).put("issuing_ca", pem(pki.ca())).put("serial_number", cert.getSerialNumber().toString(16))
                    .put("expiration", cert.getNotAfter().toInstant().getEpochSecond());
            data.putArray("ca_chain").add(pem(pki.ca()));
            send(ex, 200, out);
        } else {
            error(ex, 404, "no handler for route \"" + mount + "/" + rest + "\"");
        }
    }

    static boolean glob(String pattern, String value) {
        for (String alt : pattern.split(",")) {
            String a = alt.strip();
            if (a.endsWith("*") ? value.startsWith(a.substring(0, a.length() - 1)) : value.equals(a)) {
                return true;
            }
        }
        return false;
    }

    static Duration duration(String v) {
        String t = v.strip();
        long n = Long.parseLong(t.replaceAll("[a-z]+$", ""));
        if (t.endsWith("h")) {
            return Duration.ofHours(n);
        }
        if (t.endsWith("m")) {
            return Duration.ofMinutes(n);
        }
        return Duration.ofSeconds(n);
    }

    private static String pem(Object o) throws IOException {
        var out = new StringWriter();
        try (var w = new JcaPEMWriter(out)) {
            w.writeObject(o);
        }
        return out.toString();
    }

    private static JsonNode readBody(HttpExchange ex) throws IOException {
        byte[] b = ex.getRequestBody().readAllBytes();
        return b.length == 0 ? JSON.createObjectNode() : JSON.readTree(b);
    }

    private static void error(HttpExchange ex, int status, String message) throws IOException {
        var out = JSON.createObjectNode();
        out.putArray("errors").add(message);
        send(ex, status, out);
    }

    private static void send(HttpExchange ex, int status, JsonNode body) throws IOException {
        byte[] bytes = body == null ? new byte[0] : JSON.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, status == 204 ? -1 : bytes.length);
        if (status != 204) {
            ex.getResponseBody().write(bytes);
        }
        ex.close();
    }
}
