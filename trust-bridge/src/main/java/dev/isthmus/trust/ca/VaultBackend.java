package dev.isthmus.trust.ca;

import io.github.jopenlibs.vault.Vault;
import io.github.jopenlibs.vault.VaultConfig;
import io.github.jopenlibs.vault.VaultException;
import io.grpc.Status;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jboss.logging.Logger;

/**
 * The {@code vault} CA backend: Vault's PKI secrets engine signs, through the Vault Java driver.
 *
 * <p>At start it logs in (a token, or AppRole with role id and secret id), and, unless told the
 * mounts are pre-provisioned, makes what is missing: a PKI mount for the trust domain (max lease TTL
 * raised), a root (EC P-256) with the trust domain as common name, and a role that may sign only
 * {@code spiffe://<trust-domain>/*} URI SANs, EC P-256 keys, for server and client auth. It then
 * reads the CA certificate back. Each CSR (already checked by {@link SvidIssuer#checkCsr}) is sent to
 * {@code <mount>/sign/<role>} with the SPIFFE ID as URI SAN. The trust bundle is written to KV v2
 * ({@code <kv-mount>/data/isthmus/bundles/<trust-domain>}) so a restarted bridge still has it.
 *
 * <p>Root rotation uses Vault's issuer API (1.11+): a second root made with {@code root/rotate},
 * made the default issuer at the switch, deleted at retirement; the bundle holds every issuer.
 *
 * <p>Vault unreachable or refusing: signing answers {@code UNAVAILABLE} with Vault's words;
 * certificates already issued are not affected.
 */
public final class VaultBackend implements CaBackend {

    private static final Logger LOG = Logger.getLogger(VaultBackend.class);

    /**
     * How to reach and use Vault.
     *
     * @param token a Vault token, or null to use AppRole
     * @param appRoleId AppRole role id (with {@code appRoleSecretId}), or null
     * @param provision make the mount, root and role when missing (false: they must exist)
     */
    public record Settings(String address, String token, String appRoleId, String appRoleSecretId, String pkiMount, String role,
            String kvMount, boolean provision, Duration maxTtl) {
    }

    private final Settings settings;
    private final String trustDomain;
    private final Vault vault;
    private volatile List<X509Certificate> roots = List.of();

    public VaultBackend(Settings settings, String trustDomain) throws VaultException {
        this.settings = settings;
        this.trustDomain = trustDomain;
        var config = config(settings);
        if (settings.token() != null) {
            config.token(settings.token());
        }
        Vault v = Vault.create(config.build());
        if (settings.token() == null) {
            if (settings.appRoleId() == null || settings.appRoleSecretId() == null) {
                throw new VaultException("no Vault credential: set isthmus.vault.token(-file), or isthmus.vault.approle.role-id and secret-id(-file)");
            }
            String token = v.auth().loginByAppRole("approle", settings.appRoleId(), settings.appRoleSecretId()).getAuthClientToken();
            v = Vault.create(config(settings).token(token).build());
            LOG.infof("event=vault_login method=approle address=%s", settings.address());
        }
        this.vault = v;
    }

    /** Paths are used as written (the KV v2 {@code data/} segment included). */
    private static VaultConfig config(Settings settings) {
        return new VaultConfig().address(settings.address()).engineVersion(1).openTimeout(5).readTimeout(10);
    }

    /** Throws with Vault's own words unless the answer is a success. */
    private static io.github.jopenlibs.vault.response.LogicalResponse ok(io.github.jopenlibs.vault.response.LogicalResponse r, String what)
            throws VaultException {
        int status = r.getRestResponse().getStatus();
        if (status >= 200 && status < 300) {
            return r;
        }
        String body = new String(r.getRestResponse().getBody(), StandardCharsets.UTF_8);
        throw new VaultException(what + ": Vault answered " + status + " " + body.strip(), status);
    }

    /** Provisions what is missing (unless told not to) and reads the CA back. */
    public VaultBackend start() throws VaultException {
        String mount = settings.pkiMount();
        if (settings.provision()) {
            var mounts = ok(vault.logical().read("sys/mounts"), "listing mounts");
            boolean present = mounts.getData().containsKey(mount + "/") || mounts.getDataObject().get(mount + "/") != null;
            if (!present) {
                ok(vault.logical().write("sys/mounts/" + mount, Map.of("type", "pki")), "mounting " + mount);
                ok(vault.logical().write("sys/mounts/" + mount + "/tune", Map.of("max_lease_ttl", settings.maxTtl().toHours() + "h")), "tuning " + mount);
                LOG.infof("event=vault_mount_created path=%s", mount);
            }
            if (readCa().isEmpty()) {
                ok(vault.logical().write(mount + "/root/generate/internal", Map.of("common_name", trustDomain, "key_type", "ec",
                        "key_bits", 256, "ttl", settings.maxTtl().toHours() + "h", "uri_sans", "spiffe://" + trustDomain)), "generating the root");
                LOG.infof("event=vault_root_generated mount=%s trust_domain=%s", mount, trustDomain);
            }
            var role = new LinkedHashMap<String, Object>();
            role.put("allowed_uri_sans", "spiffe://" + trustDomain + "/*");
            role.put("allow_any_name", true);
            role.put("enforce_hostnames", false);
            role.put("require_cn", false);
            role.put("key_type", "ec");
            role.put("key_bits", 256);
            role.put("server_flag", true);
            role.put("client_flag", true);
            role.put("max_ttl", settings.maxTtl().toSeconds() + "s");
            ok(vault.logical().write(mount + "/roles/" + settings.role(), role), "writing role " + settings.role());
        }
        refreshRoots();
        if (roots.isEmpty()) {
            throw new VaultException(mount + " has no CA certificate; provision it or set isthmus.vault.provision=true");
        }
        LOG.infof("event=vault_ca_ready mount=%s role=%s roots=%d root_expires=%s", mount, settings.role(), roots.size(),
                roots.get(0).getNotAfter().toInstant());
        return this;
    }

    /** An issuer of the PKI mount (Vault 1.11+ keeps several per mount). */
    record Issuer(String id, X509Certificate certificate, boolean isDefault) {
    }

    /**
     * The mount's issuers ({@code LIST <mount>/issuers}, then {@code GET <mount>/issuer/:id/json});
     * on a Vault older than 1.11, which has no issuer API, the one CA certificate as the default.
     */
    List<Issuer> issuers() throws VaultException {
        List<String> ids;
        try {
            var list = vault.logical().list(settings.pkiMount() + "/issuers");
            int status = list.getRestResponse().getStatus();
            ids = status >= 200 && status < 300 ? list.getListData() : List.of();
        } catch (VaultException e) {
            if (e.getHttpStatusCode() != 404 && e.getHttpStatusCode() != 405) {
                throw e;
            }
            ids = List.of();
        }
        if (ids == null || ids.isEmpty()) {
            return readCa().stream().map(c -> new Issuer("default", c, true)).toList();
        }
        String defaultId = ok(vault.logical().read(settings.pkiMount() + "/config/issuers"), "reading the default issuer").getData()
                .getOrDefault("default", "");
        var out = new ArrayList<Issuer>();
        for (String id : ids) {
            var data = ok(vault.logical().read(settings.pkiMount() + "/issuer/" + id + "/json"), "reading issuer " + id).getData();
            try {
                out.add(new Issuer(id, parse(data.get("certificate")), id.equals(defaultId)));
            } catch (Exception e) {
                throw new VaultException("issuer " + id + " of " + settings.pkiMount() + " has an unreadable certificate: " + e.getMessage());
            }
        }
        out.sort(java.util.Comparator.comparing((Issuer i) -> !i.isDefault()).thenComparing(i -> i.certificate().getNotBefore()));
        return out;
    }

    /** Re-reads the roots: the default issuer first, then the others (during a rotation). */
    public void refreshRoots() throws VaultException {
        var all = issuers();
        roots = all.stream().map(Issuer::certificate).toList();
    }

    // ----- root rotation through Vault's issuer API (Vault 1.11+) -----

    /**
     * Distribution: makes a second root with {@code POST <mount>/root/rotate/internal} (Vault does
     * not make it the default, so the old root keeps signing); returns its issuer id. If the mount
     * already has a non-default issuer (a bridge stopped between making it and recording the
     * rotation), that one is used.
     */
    public String addNextRoot() throws VaultException {
        var existing = issuers().stream().filter(i -> !i.isDefault() && !i.id().equals("default")).findFirst();
        if (existing.isPresent()) {
            refreshRoots();
            return existing.get().id();
        }
        var made = ok(vault.logical().write(settings.pkiMount() + "/root/rotate/internal", Map.of("common_name", trustDomain, "key_type", "ec",
                "key_bits", 256, "ttl", settings.maxTtl().toHours() + "h", "uri_sans", "spiffe://" + trustDomain, "issuer_name",
                "isthmus-" + System.currentTimeMillis())), "generating the next root");
        String id = made.getData().get("issuer_id");
        if (id == null || id.isBlank()) {
            throw new VaultException(settings.pkiMount() + "/root/rotate/internal answered without an issuer_id; Vault 1.11 or later is needed");
        }
        refreshRoots();
        LOG.infof("event=vault_root_rotation step=next_root_created mount=%s issuer=%s roots=%d", settings.pkiMount(), id, roots.size());
        return id;
    }

    /** The switch: {@code issuerId} becomes the default issuer ({@code POST <mount>/config/issuers}), so the role signs with it. */
    public void switchTo(String issuerId) throws VaultException {
        var target = issuers().stream().filter(i -> i.id().equals(issuerId)).findFirst()
                .orElseThrow(() -> new VaultException("issuer " + issuerId + " is no longer on " + settings.pkiMount()
                        + "; the rotation cannot switch to it (start a new one)"));
        if (!target.isDefault()) {
            ok(vault.logical().write(settings.pkiMount() + "/config/issuers", Map.of("default", issuerId)), "setting the default issuer");
        }
        refreshRoots();
        LOG.infof("event=vault_root_rotation step=default_switched mount=%s issuer=%s", settings.pkiMount(), issuerId);
    }

    /** Retirement: deletes every issuer but the default ({@code DELETE <mount>/issuer/:id}). */
    public void retireOldRoots() throws VaultException {
        for (var i : issuers()) {
            if (!i.isDefault()) {
                ok(vault.logical().delete(settings.pkiMount() + "/issuer/" + i.id()), "deleting the retired issuer " + i.id());
                LOG.infof("event=vault_root_rotation step=old_root_deleted mount=%s issuer=%s", settings.pkiMount(), i.id());
            }
        }
        refreshRoots();
    }

    private List<X509Certificate> readCa() throws VaultException {
        try {
            var r = vault.logical().read(settings.pkiMount() + "/cert/ca");
            if (r.getRestResponse().getStatus() == 404 || r.getRestResponse().getStatus() == 400) {
                return List.of();
            }
            String pem = ok(r, "reading the CA").getData().getOrDefault("certificate", "");
            return pem.isBlank() ? List.of() : List.of(parse(pem));
        } catch (VaultException e) {
            if (e.getHttpStatusCode() == 404 || e.getHttpStatusCode() == 400) {
                return List.of();
            }
            throw e;
        } catch (Exception e) {
            throw new VaultException("the CA certificate read from " + settings.pkiMount() + " cannot be parsed: " + e.getMessage());
        }
    }

    private final java.net.http.HttpClient probeClient = java.net.http.HttpClient.newBuilder()
            .version(java.net.http.HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();

    /**
     * Asks Vault's {@code GET /v1/sys/health} (unauthenticated); returns why Vault cannot sign now
     * (unreachable, sealed, standby, not initialised), or an empty string when it is active.
     */
    public String probe() {
        try {
            var res = probeClient.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(settings.address() + "/v1/sys/health"))
                    .timeout(Duration.ofSeconds(3)).build(), java.net.http.HttpResponse.BodyHandlers.discarding());
            return switch (res.statusCode()) {
                case 200 -> "";
                case 429 -> "Vault at " + settings.address() + " is a standby node";
                case 501 -> "Vault at " + settings.address() + " is not initialised";
                case 503 -> "Vault at " + settings.address() + " is sealed";
                default -> "Vault at " + settings.address() + " answered /v1/sys/health with " + res.statusCode();
            };
        } catch (java.io.IOException e) {
            return "Vault at " + settings.address() + " is unreachable: " + e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
    }

    @Override
    public String name() {
        return "vault";
    }

    @Override
    public List<X509Certificate> roots() {
        return roots;
    }

    @Override
    public Signed sign(String csrPem, java.security.PublicKey key, String spiffeId, Duration ttl) throws SvidIssuer.Refusal {
        try {
            var body = new LinkedHashMap<String, Object>();
            body.put("csr", csrPem);
            body.put("uri_sans", spiffeId);
            body.put("ttl", ttl.toSeconds() + "s");
            body.put("exclude_cn_from_sans", true);
            body.put("format", "pem");
            var response = vault.logical().write(settings.pkiMount() + "/sign/" + settings.role(), body);
            int status = response.getRestResponse().getStatus();
            if (status >= 400 && status < 500) {
                throw new SvidIssuer.Refusal(Status.Code.FAILED_PRECONDITION, "vault_refused", "Vault refused to sign (role "
                        + settings.role() + " of " + settings.pkiMount() + "): " + status + " "
                        + new String(response.getRestResponse().getBody(), StandardCharsets.UTF_8).strip());
            }
            var data = ok(response, "signing").getData();
            X509Certificate cert = parse(data.get("certificate"));
            var chain = new ArrayList<X509Certificate>();
            if (data.get("issuing_ca") != null) {
                chain.add(parse(data.get("issuing_ca")));
            }
            return new Signed(cert, chain);
        } catch (VaultException e) {
            throw new SvidIssuer.Refusal(Status.Code.UNAVAILABLE, "vault_error", "Vault did not sign (status " + e.getHttpStatusCode() + "): "
                    + e.getMessage());
        } catch (SvidIssuer.Refusal r) {
            throw r;
        } catch (Exception e) {
            throw new SvidIssuer.Refusal(Status.Code.INTERNAL, "vault_answer", "Vault's answer cannot be read: " + e.getMessage());
        }
    }

    @Override
    public void storeBundle(String bundleJson) throws SvidIssuer.Refusal {
        try {
            ok(vault.logical().write(kvPath(), Map.of("data", io.github.jopenlibs.vault.json.Json.object().add("bundle", bundleJson))),
                    "storing the bundle");
        } catch (VaultException e) {
            throw new SvidIssuer.Refusal(Status.Code.UNAVAILABLE, "vault_error", "the bundle cannot be stored in Vault KV: " + e.getMessage());
        }
    }

    /** The bundle stored in KV, or null if there is none. */
    public String loadBundle() throws VaultException {
        try {
            var r = vault.logical().read(kvPath());
            if (r.getRestResponse().getStatus() == 404) {
                return null;
            }
            var data = ok(r, "reading the bundle").getDataObject().get("data");
            return data == null || !data.isObject() ? null : data.asObject().getString("bundle", null);
        } catch (VaultException e) {
            if (e.getHttpStatusCode() == 404) {
                return null;
            }
            throw e;
        }
    }

    private String kvPath() {
        return settings.kvMount() + "/data/isthmus/bundles/" + trustDomain;
    }

    static X509Certificate parse(String pem) throws Exception {
        return (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
    }
}
