# The sidecar image. Build context: the repository's root, after the build
# (./mvnw -B package -DskipTests): docker build -f deploy/kubernetes/images/sidecar-lite.Dockerfile -t REGISTRY/isthmus/sidecar-lite:0.1.0 .
# The JVM options are the benchmark's (docs/benchmarks.md) but for the young generation: with
# -Xms32m -Xmn16m an HTTP/2 sidecar under h2load peaked at 164 MiB against 183-201 (fewer
# short-lived stream objects reach the old generation), for 8 MiB more when ready; a pod's memory
# limit is set by its peak. The class-data archive is made in /tmp (an emptyDir) at the first exit,
# so a restarted container starts from it.
# e2e KubernetesDeploymentIT lays out this image's files as the COPY lines say and runs its ENTRYPOINT.
FROM eclipse-temurin:21-jre
COPY sidecar-lite/target/sidecar-lite.jar /opt/isthmus/sidecar-lite/
COPY sidecar-lite/target/lib/ /opt/isthmus/sidecar-lite/lib/
WORKDIR /opt/isthmus/sidecar-lite
USER 10001
ENTRYPOINT ["java", "-Xms32m", "-Xmn16m", "-Xmx64m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-XX:+UnlockExperimentalVMOptions", "-XX:TrimNativeHeapInterval=1000", "-XX:SharedArchiveFile=/tmp/sidecar-lite.jsa", "-XX:+AutoCreateSharedArchive", "-jar", "/opt/isthmus/sidecar-lite/sidecar-lite.jar"]
