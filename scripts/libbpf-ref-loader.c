// The libbpf reference loader of scripts/libbpf-reference.sh: for each object, loads the object
// as libbpf does, then each program it left unloaded on its own (all others' autoload off), and
// prints one tab-separated line per program:
//
//   object  program  section  loaded|refused  reason (first libbpf warning | last verifier line)
//
// usage: libbpf-ref-loader PIN_ROOT OBJECT...   (PIN_ROOT: a bpffs for maps that ask to be pinned)
//
// As /init of a guest (pid 1, linked statically) it mounts what libbpf needs, loads every
// /objects/*.o in a child process of its own (so a crash or a hang costs one object), prints to
// the console and powers the machine off.
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

// What libbpf said during one attempt: its first warning, and the last line of a verifier log.
static char first_warning[512];
static char last_log_line[512];

static void one_line(char *dst, size_t cap, const char *src) {
	size_t n = 0;
	for (; *src && n + 1 < cap; src++)
		dst[n++] = (*src == '\n' || *src == '\t') ? ' ' : *src;
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

// libbpf prints the verifier log as one message, between two markers: keep its last line
// that says something.
static void capture_log(char *msg) {
	char *start = strstr(msg, "-- BEGIN PROG LOAD LOG --");
	start = strchr(start, '\n');
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

static const char *base_name(const char *path) {
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static struct bpf_object *open_object(const char *path, const char *pin_root) {
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root);
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
	printf("\n");
}

// Loads program #index alone (every other program's autoload off); prints its line.
static int load_one(const char *path, const char *pin_root, int index) {
	const char *name = base_name(path);
	struct bpf_object *obj = open_object(path, pin_root);
	if (!obj) {
		int err = -errno;
		printf("%s\t#%d\t-\trefused\treopen: ", name, index);
		print_reason(err);
		return 1;
	}
	struct bpf_program *prog, *target = NULL;
	int j = 0;
	bpf_object__for_each_program(prog, obj) {
		bpf_program__set_autoload(prog, j == index);
		if (j == index)
			target = prog;
		j++;
	}
	int err = target ? bpf_object__load(obj) : -ENOENT;
	if (target) {
		printf("%s\t%s\t%s\t%s\t", name, bpf_program__name(target),
		       bpf_program__section_name(target), err ? "refused" : "loaded");
		if (err)
			print_reason(err);
		else
			printf("\n");
	}
	bpf_object__close(obj);
	return err != 0;
}

// First the object as a user's libbpf loads it (default autoload); programs that this leaves
// unloaded (autoload off, or the whole load failed) are then tried one at a time, so one refused
// program does not hide the others. A program in a prog_array's initial values needs its
// neighbours: loaded alone it fails, which is why the whole object goes first.
static int load_object(const char *path, const char *pin_root) {
	const char *name = base_name(path);
	struct bpf_object *obj = open_object(path, pin_root);
	if (!obj) {
		int err = -errno;
		printf("%s\t-\t-\trefused\topen: ", name);
		print_reason(err);
		return 1;
	}
	enum { MAX_PROGRAMS = 4096 };
	static char loaded_whole[MAX_PROGRAMS];
	int count = 0;
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) count++;
	if (count == 0) {
		printf("%s\t-\t-\tno-programs\t\n", name);
		bpf_object__close(obj);
		return 0;
	}
	if (count > MAX_PROGRAMS) {
		printf("%s\t-\t-\trefused\tmore than %d programs\n", name, MAX_PROGRAMS);
		bpf_object__close(obj);
		return 1;
	}
	memset(loaded_whole, 0, sizeof(loaded_whole));
	if (bpf_object__load(obj) == 0) {
		int i = 0;
		bpf_object__for_each_program(prog, obj) {
			if (bpf_program__autoload(prog)) {
				loaded_whole[i] = 1;
				printf("%s\t%s\t%s\tloaded\t\n", name, bpf_program__name(prog),
				       bpf_program__section_name(prog));
			}
			i++;
		}
	}
	bpf_object__close(obj);
	int refused = 0;
	for (int i = 0; i < count; i++)
		if (!loaded_whole[i])
			refused += load_one(path, pin_root, i);
	fflush(stdout);
	return refused > 0;
}

enum { GUEST_OBJECT_TIMEOUT_S = 120 };

static int object_file(const struct dirent *entry) {
	size_t n = strlen(entry->d_name);
	return n > 2 && strcmp(entry->d_name + n - 2, ".o") == 0;
}

static void run_as_init(void) {
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL);
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	FILE *release = fopen("/proc/sys/kernel/osrelease", "r");
	char kernel[128] = "?";
	if (release) {
		if (fgets(kernel, sizeof(kernel), release))
			kernel[strcspn(kernel, "\n")] = '\0';
		fclose(release);
	}
	printf("# libbpf %s in a guest, kernel %s\n", libbpf_version_string(), kernel);
	struct dirent **entries;
	int count = scandir("/objects", &entries, object_file, alphasort);
	for (int i = 0; i < count; i++) {
		char path[512];
		snprintf(path, sizeof(path), "/objects/%s", entries[i]->d_name);
		fflush(stdout);
		pid_t child = fork();
		if (child == 0) {
			alarm(GUEST_OBJECT_TIMEOUT_S);
			load_object(path, "/sys/fs/bpf");
			fflush(stdout);
			_exit(0);
		}
		int status = 0;
		if (child < 0 || waitpid(child, &status, 0) < 0)
			printf("%s\t-\t-\trefused\tcannot run the loader: %s\n", entries[i]->d_name,
			       strerror(errno));
		else if (WIFSIGNALED(status))
			printf("%s\t-\t-\trefused\t%s\n", entries[i]->d_name,
			       WTERMSIG(status) == SIGALRM ? "timeout" : strsignal(WTERMSIG(status)));
		free(entries[i]);
	}
	printf("# done: %d objects\n", count < 0 ? 0 : count);
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
}

int main(int argc, char **argv) {
	libbpf_set_print(capture);
	if (getpid() == 1) {
		run_as_init();
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: %s PIN_ROOT OBJECT...\n", argv[0]);
		return 2;
	}
	for (int i = 2; i < argc; i++)
		load_object(argv[i], argv[1]);
	fflush(stdout);
	return 0;
}
