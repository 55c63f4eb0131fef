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
// usage: loader PIN_ROOT KCONFIG [-m MAP=N | -v MAP=N | -n PROGRAM]... OBJECT...
//   PIN_ROOT  a bpffs directory for maps that ask to be pinned
//   KCONFIG   the kernel's .config for `.kconfig` externs (a guest has no /boot, and Debian kernels
//             no /proc/config.gz: the agent passes the one the runner shipped), or - for libbpf's
//             own search
//   -m MAP=N  bpf_map__set_max_entries(MAP, N) before load, as the object's user space would
//   -v MAP=N  bpf_map__set_value_size(MAP, N) likewise
//   -n PROG   bpf_program__set_autoload(PROG, false): PROG is neither loaded nor printed
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

// What the object's user space sets between open and load (-m, -n).
enum { MAX_SETTINGS = 256 };
static const char *sized_maps[MAX_SETTINGS];
static unsigned int sized_values[MAX_SETTINGS];
static char sized_what[MAX_SETTINGS]; // 'm': max_entries, 'v': value_size
static int n_sized;
static const char *not_autoloaded[MAX_SETTINGS];
static int n_not_autoloaded;

static int is_not_autoloaded(const char *program) {
	for (int i = 0; i < n_not_autoloaded; i++)
		if (strcmp(not_autoloaded[i], program) == 0)
			return 1;
	return 0;
}

// Applies -m and -n to a freshly opened object; a name the object lacks is ignored (the runner
// checked the names against the object before anything booted).
static void apply_settings(struct bpf_object *obj) {
	for (int i = 0; i < n_sized; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, sized_maps[i]);
		if (map && sized_what[i] == 'm')
			bpf_map__set_max_entries(map, sized_values[i]);
		else if (map && sized_what[i] == 'v')
			bpf_map__set_value_size(map, sized_values[i]);
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) {
		if (is_not_autoloaded(bpf_program__name(prog)))
			bpf_program__set_autoload(prog, false);
	}
}

// -b PATH: the BTF CO-RE relocates against instead of the running kernel's (an external BTF).
static const char *btf_custom_path;

static struct bpf_object *open_object(const char *path, const char *pin_root) {
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root, .kconfig = kconfig,
		    .btf_custom_path = btf_custom_path);
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
	apply_settings(obj);
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
	apply_settings(obj);
	enum { MAX_PROGRAMS = 4096 };
	static char loaded_whole[MAX_PROGRAMS];
	static char skipped[MAX_PROGRAMS];
	int count = 0;
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) count++;
	if (count > MAX_PROGRAMS) {
		printf("-\t-\trefused\tmore than %d programs\t-\n", MAX_PROGRAMS);
		bpf_object__close(obj);
		return;
	}
	memset(loaded_whole, 0, sizeof(loaded_whole));
	memset(skipped, 0, sizeof(skipped));
	int k = 0;
	bpf_object__for_each_program(prog, obj) skipped[k++] = is_not_autoloaded(bpf_program__name(prog));
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
		if (!loaded_whole[i] && !skipped[i])
			load_one(path, pin_root, i);
	fflush(stdout);
}

int main(int argc, char **argv) {
	libbpf_set_print(capture);
	if (argc < 4) {
		fprintf(stderr, "usage: %s PIN_ROOT KCONFIG|- [-m MAP=N | -v MAP=N | -n PROGRAM | -b BTF]... OBJECT...\n",
			argv[0]);
		return 2;
	}
	int first_object = 3;
	while (first_object + 1 < argc && argv[first_object][0] == '-' &&
	       argv[first_object][1] && !argv[first_object][2]) {
		char flag = argv[first_object][1];
		char *value = argv[first_object + 1];
		if ((flag == 'm' || flag == 'v') && n_sized < MAX_SETTINGS) {
			char *eq = strrchr(value, '=');
			if (!eq) {
				fprintf(stderr, "-%c %s: expected MAP=N\n", flag, value);
				return 2;
			}
			*eq = '\0';
			sized_maps[n_sized] = value;
			sized_what[n_sized] = flag;
			sized_values[n_sized++] = (unsigned int)strtoul(eq + 1, NULL, 10);
		} else if (flag == 'n' && n_not_autoloaded < MAX_SETTINGS) {
			not_autoloaded[n_not_autoloaded++] = value;
		} else if (flag == 'b') {
			btf_custom_path = value;
		} else {
			fprintf(stderr, "%s: unknown option or too many settings\n", argv[first_object]);
			return 2;
		}
		first_object += 2;
	}
	if (strcmp(argv[2], "-") != 0 && !(kconfig = read_file(argv[2]))) {
		fprintf(stderr, "cannot read the kernel config %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	printf("# libbpf %s\n", libbpf_version_string());
	for (int i = first_object; i < argc; i++)
		load_object(argv[i], argv[1]);
	fflush(stdout);
	return 0;
}
