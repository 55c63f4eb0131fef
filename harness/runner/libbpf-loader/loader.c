// The second loader of every guest (`harness --libbpf`): libbpf loads each object given, as a
// user's libbpf loader does, and prints one tab-separated line per program for the guest agent:
//
//   program  section  loaded|refused  reason  xlated
//
// `reason` is libbpf's first warning and the verifier log's last meaningful line (refused
// programs only); `xlated` is the kernel's translated instructions of a loaded program
// (BPF_OBJ_GET_INFO_BY_FD, xlated_prog_insns) in lower-case hex, map references as the kernel
// dumps them (map ids): the agent normalises them, as it does its own programs'. A line
// `# libbpf <version>` comes first; an object that does not open gives one line with program `-`.
//
// usage: loader PIN_ROOT KCONFIG OBJECT...
//   PIN_ROOT  a bpffs directory for maps that ask to be pinned
//   KCONFIG   the kernel's .config for `.kconfig` externs (a guest has no /boot, and Debian kernels
//             no /proc/config.gz: the agent passes the one the runner shipped), or - for libbpf's
//             own search
//
// Built on the host by the runner (harness/runner/src/libbpf_loader.rs), linked statically
// against the host's libbpf, shipped in the initramfs and run by the agent with a timeout.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

// What libbpf said during one attempt: its first warning, and the last line of a verifier log.
static char first_warning[512];
static char last_log_line[512];

static void one_line(char *dst, size_t cap, const char *src) {
	size_t n = 0;
	for (; *src && n + 1 < cap; src++)
		dst[n++] = (*src == '\n' || *src == '\t' || *src == '\r') ? ' ' : *src;
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

// Lines of a verifier log that say how the verification went, not why it failed.
static int is_statistics(const char *line) {
	static const char *const prefixes[] = {"processed ", "verification time", "stack depth",
					       "mark_precise", "func#"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

// libbpf prints the verifier log as one message between two markers: keep its last line that
// says something.
static void capture_log(char *msg) {
	char *start = strstr(msg, "-- BEGIN PROG LOAD LOG --");
	start = start ? strchr(start, '\n') : NULL;
	if (!start)
		return;
	start++;
	char *end = strstr(start, "-- END PROG LOAD LOG --");
	if (end)
		*end = '\0';
	for (char *line = strtok(start, "\n"); line; line = strtok(NULL, "\n"))
		if (*line && !is_statistics(line))
			one_line(last_log_line, sizeof(last_log_line), line);
}

static int capture(enum libbpf_print_level level, const char *fmt, va_list args) {
	static char msg[1 << 20];
	if (level != LIBBPF_WARN)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, args);
	if (strstr(msg, "-- BEGIN PROG LOAD LOG --"))
		capture_log(msg);
	else if (!first_warning[0])
		one_line(first_warning, sizeof(first_warning), msg);
	return 0;
}

// The kernel's config text, or NULL for libbpf's own search.
static char *kconfig;

static char *read_file(const char *path) {
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	enum { MAX_CONFIG = 16 << 20 };
	char *text = calloc(MAX_CONFIG + 1, 1);
	size_t n = text ? fread(text, 1, MAX_CONFIG, f) : 0;
	fclose(f);
	if (text)
		text[n] = '\0';
	return text;
}

static struct bpf_object *open_object(const char *path, const char *pin_root) {
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root, .kconfig = kconfig);
	first_warning[0] = last_log_line[0] = '\0';
	return bpf_object__open_file(path, &opts);
}

static void print_reason(int err) {
	if (first_warning[0])
		printf("%s", first_warning);
	else
		printf("error %d (%s)", err, strerror(err < 0 ? -err : err));
	if (last_log_line[0])
		printf(" | %s", last_log_line);
}

// The loaded program's translated instructions, in hex; "-" when the kernel would not say.
static void print_xlated(int fd) {
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) != 0 || info.xlated_prog_len == 0) {
		printf("-");
		return;
	}
	uint32_t size = info.xlated_prog_len;
	unsigned char *insns = calloc(size, 1);
	if (!insns) {
		printf("-");
		return;
	}
	memset(&info, 0, sizeof(info));
	info.xlated_prog_len = size;
	info.xlated_prog_insns = (uint64_t)(uintptr_t)insns;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
		printf("-");
	} else {
		uint32_t got = info.xlated_prog_len < size ? info.xlated_prog_len : size;
		for (uint32_t i = 0; i < got; i++)
			printf("%02x", insns[i]);
	}
	free(insns);
}

static void print_loaded(struct bpf_program *prog) {
	printf("%s\t%s\tloaded\t\t", bpf_program__name(prog), bpf_program__section_name(prog));
	print_xlated(bpf_program__fd(prog));
	printf("\n");
}

// Loads program #index alone (every other program's autoload off); prints its line.
static void load_one(const char *path, const char *pin_root, int index) {
	struct bpf_object *obj = open_object(path, pin_root);
	if (!obj) {
		printf("#%d\t-\trefused\treopen: ", index);
		print_reason(-errno);
		printf("\t-\n");
		return;
	}
	struct bpf_program *prog, *target = NULL;
	int j = 0;
	bpf_object__for_each_program(prog, obj) {
		bpf_program__set_autoload(prog, j == index);
		if (j == index)
			target = prog;
		j++;
	}
	if (target) {
		int err = bpf_object__load(obj);
		if (err == 0) {
			print_loaded(target);
		} else {
			printf("%s\t%s\trefused\t", bpf_program__name(target),
			       bpf_program__section_name(target));
			print_reason(err);
			printf("\t-\n");
		}
	}
	bpf_object__close(obj);
}

// First the object as a user's libbpf loads it (default autoload); programs that this leaves
// unloaded (autoload off, or the whole load failed) are then tried one at a time, so one refused
// program does not hide the others. A program in a prog_array's initial values needs its
// neighbours: loaded alone it fails, which is why the whole object goes first.
static void load_object(const char *path, const char *pin_root) {
	struct bpf_object *obj = open_object(path, pin_root);
	if (!obj) {
		printf("-\t-\trefused\topen: ");
		print_reason(-errno);
		printf("\t-\n");
		return;
	}
	enum { MAX_PROGRAMS = 4096 };
	static char loaded_whole[MAX_PROGRAMS];
	int count = 0;
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) count++;
	if (count > MAX_PROGRAMS) {
		printf("-\t-\trefused\tmore than %d programs\t-\n", MAX_PROGRAMS);
		bpf_object__close(obj);
		return;
	}
	memset(loaded_whole, 0, sizeof(loaded_whole));
	if (count > 0 && bpf_object__load(obj) == 0) {
		int i = 0;
		bpf_object__for_each_program(prog, obj) {
			if (bpf_program__autoload(prog)) {
				loaded_whole[i] = 1;
				print_loaded(prog);
			}
			i++;
		}
	}
	bpf_object__close(obj);
	for (int i = 0; i < count; i++)
		if (!loaded_whole[i])
			load_one(path, pin_root, i);
	fflush(stdout);
}

int main(int argc, char **argv) {
	libbpf_set_print(capture);
	if (argc < 4) {
		fprintf(stderr, "usage: %s PIN_ROOT KCONFIG|- OBJECT...\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[2], "-") != 0 && !(kconfig = read_file(argv[2]))) {
		fprintf(stderr, "cannot read the kernel config %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	printf("# libbpf %s\n", libbpf_version_string());
	for (int i = 3; i < argc; i++)
		load_object(argv[i], argv[1]);
	fflush(stdout);
	return 0;
}
