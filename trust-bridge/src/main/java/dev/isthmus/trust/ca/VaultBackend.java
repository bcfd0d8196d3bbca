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
        roots = readCa();
        if (roots.isEmpty()) {
            throw new VaultException(mount + " has no CA certificate; provision it or set isthmus.vault.provision=true");
        }
        LOG.infof("event=vault_ca_ready mount=%s role=%s root_expires=%s", mount, settings.role(), roots.get(0).getNotAfter().toInstant());
        return this;
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
