# `make test` runs every test on a fresh machine: it installs the tools the tests use, then runs them.
# tests/cluster.rs and tests/audit.rs run against a real kube-apiserver and etcd of the newest Kubernetes
# release, and again against the oldest one the chart claims (charts/vigil/Chart.yaml kubeVersion).
KUBERNETES := 1.37.2
KUBERNETES_OLDEST := 1.34.4

.PHONY: test test-deps
test: test-deps
	VIGIL_KUBERNETES=$(KUBERNETES) cargo test
	VIGIL_KUBERNETES=$(KUBERNETES_OLDEST) cargo test --test cluster --test audit

test-deps:
	VIGIL_KUBERNETES_VERSIONS="$(KUBERNETES) $(KUBERNETES_OLDEST)" ./scripts/test-deps.sh
