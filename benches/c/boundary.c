/* Cost of the language boundary, C side: the same 16-node loopback overlay
 * and the same sequential blocking put/get/lookup as benches/boundary.rs,
 * through include/chordsip.h. Prints "| C | op | ops/s | p50 us | p99 us |".
 * Usage: boundary [OPS]. Run by scripts/bench-boundary.sh. */
#define _POSIX_C_SOURCE 200809L
#include <chordsip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NODES 16

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void report(const char *api, const char *op, double *lat, int n, double total_us) {
  qsort(lat, n, sizeof *lat, cmp);
  printf("| %s | %s | %.0f | %.0f | %.0f |\n", api, op, n / (total_us / 1e6), lat[n / 2],
         lat[(int)(n * 0.99)]);
  fflush(stdout);
}

static void die(const char *what, chordsip_result r) {
  fprintf(stderr, "%s: %s\n", what, chordsip_result_str(r));
  exit(1);
}

int main(int argc, char **argv) {
  int ops = argc > 1 ? atoi(argv[1]) : 5000;
  if (ops < 100) ops = 100;
  double *lat = calloc(ops, sizeof *lat);
  chordsip_config *cfg;
  chordsip_result r;
  if ((r = chordsip_config_new(&cfg))) die("config", r);
  chordsip_node *nodes[NODES];
  char boot[64];
  for (int i = 0; i < NODES; i++) {
    if ((r = chordsip_node_new(cfg, &nodes[i], NULL, 0))) die("node_new", r);
    if ((r = chordsip_node_join(nodes[i], i ? boot : NULL))) die("join", r);
    if (i == 0) chordsip_node_addr(nodes[0], boot, sizeof boot);
  }
  /* Let the ring converge as the Rust side's Testnet does. */
  for (int tries = 0; tries < 300; tries++) {
    chordsip_lookup_info a, b;
    int agree = 1;
    for (int i = 0; i < NODES && agree; i++) {
      char key[32];
      snprintf(key, sizeof key, "probe-%d", i);
      if (chordsip_node_lookup(nodes[i], key, 0, &a) ||
          chordsip_node_lookup(nodes[(i + 7) % NODES], key, 0, &b) ||
          strcmp(a.node.id, b.node.id))
        agree = 0;
    }
    if (agree) break;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  /* The same settle time in all three harnesses: finger tables complete. */
  struct timespec settle = {10, 0};
  nanosleep(&settle, NULL);
  char data[100];
  memset(data, 'x', sizeof data);
  char key[64];
  double t0 = now_us();
  for (int i = 0; i < ops; i++) {
    snprintf(key, sizeof key, "sip:user%d@bench.example", i);
    double t = now_us();
    if ((r = chordsip_node_put(nodes[i % NODES], key, "dev", (const uint8_t *)data, sizeof data,
                               600, NULL)))
      die("put", r);
    lat[i] = now_us() - t;
  }
  report("C", "put", lat, ops, now_us() - t0);
  t0 = now_us();
  for (int i = 0; i < ops; i++) {
    snprintf(key, sizeof key, "sip:user%d@bench.example", i);
    chordsip_values *v;
    double t = now_us();
    if ((r = chordsip_node_get(nodes[(i + 5) % NODES], key, &v))) die("get", r);
    lat[i] = now_us() - t;
    if (chordsip_values_len(v) != 1) die("get: value missing", CHORDSIP_OK);
    chordsip_values_free(v);
  }
  report("C", "get", lat, ops, now_us() - t0);
  t0 = now_us();
  for (int i = 0; i < ops; i++) {
    snprintf(key, sizeof key, "sip:user%d@bench.example", i);
    chordsip_lookup_info li;
    double t = now_us();
    if ((r = chordsip_node_lookup(nodes[(i + 9) % NODES], key, 0, &li))) die("lookup", r);
    lat[i] = now_us() - t;
  }
  report("C", "lookup", lat, ops, now_us() - t0);
  /* No network: a query answered by the node's worker thread, and pure hashing. */
  t0 = now_us();
  for (int i = 0; i < ops; i++) {
    chordsip_stats st;
    double t = now_us();
    if ((r = chordsip_node_stats(nodes[i % NODES], &st))) die("stats", r);
    lat[i] = now_us() - t;
  }
  report("C", "stats", lat, ops, now_us() - t0);
  {
    int n = ops * 20;
    double *l2 = calloc(n, sizeof *l2);
    char hex[41];
    t0 = now_us();
    for (int i = 0; i < n; i++) {
      snprintf(key, sizeof key, "sip:user%d@bench.example", i);
      double t = now_us();
      if ((r = chordsip_key_id(key, hex, sizeof hex))) die("key_id", r);
      l2[i] = now_us() - t;
    }
    report("C", "key_id", l2, n, now_us() - t0);
    free(l2);
  }

  chordsip_client *c;
  if ((r = chordsip_client_new(boot, NULL, NULL, 0, 5000, &c))) die("client", r);
  t0 = now_us();
  for (int i = 0; i < ops; i++) {
    snprintf(key, sizeof key, "sip:user%d@bench.example", i);
    chordsip_values *v;
    double t = now_us();
    if ((r = chordsip_client_get(c, key, &v))) die("client get", r);
    lat[i] = now_us() - t;
    chordsip_values_free(v);
  }
  report("C client UDP", "get", lat, ops, now_us() - t0);
  chordsip_client_free(c);
  for (int i = 0; i < NODES; i++) chordsip_node_free(nodes[i]);
  chordsip_config_free(cfg);
  free(lat);
  return 0;
}
