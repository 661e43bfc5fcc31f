/* status.c — names and messages of mc_status codes (one table, used by the
 * Python error translator and by C tools). */
#include "mediacore.h"

typedef struct status_entry {
    mc_status status;
    const char *name;
    const char *message;
} status_entry;

static const status_entry status_table[] = {
    {MC_OK, "MC_OK", "success"},
    {MC_DROPPED, "MC_DROPPED", "record dropped by the ring's full policy (counted)"},
    {MC_E_INVAL, "MC_E_INVAL", "invalid argument"},
    {MC_E_NOMEM, "MC_E_NOMEM", "out of memory"},
    {MC_E_FULL, "MC_E_FULL", "ring or table is full"},
    {MC_E_EMPTY, "MC_E_EMPTY", "ring is empty"},
    {MC_E_TIMEOUT, "MC_E_TIMEOUT", "timed out"},
    {MC_E_TOO_LARGE, "MC_E_TOO_LARGE", "record larger than the ring accepts"},
    {MC_E_CLOSED, "MC_E_CLOSED", "closed"},
    {MC_E_BAD_MAGIC, "MC_E_BAD_MAGIC", "memory does not hold a mediacore ring (bad magic)"},
    {MC_E_BAD_VERSION, "MC_E_BAD_VERSION", "unsupported ring layout version"},
    {MC_E_BAD_SIZE, "MC_E_BAD_SIZE", "memory size does not match the ring's capacity"},
    {MC_E_IO, "MC_E_IO", "operating system call failed"},
    {MC_E_CRYPTO, "MC_E_CRYPTO", "crypto library failure"},
    {MC_E_AUTH, "MC_E_AUTH", "authentication failed"},
    {MC_E_REPLAY, "MC_E_REPLAY", "replayed packet"},
    {MC_E_MALFORMED, "MC_E_MALFORMED", "malformed input"},
    {MC_E_STATE, "MC_E_STATE", "not allowed in the current state"},
    {MC_E_UNSUPPORTED, "MC_E_UNSUPPORTED", "not supported"},
    {MC_E_NOT_FOUND, "MC_E_NOT_FOUND", "not found"},
    {MC_E_EXISTS, "MC_E_EXISTS", "already exists"},
    {MC_E_CODEC, "MC_E_CODEC", "codec failure"},
    {MC_E_BUFFER, "MC_E_BUFFER", "output buffer too small"},
};

static const status_entry *find(mc_status status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].status == status)
            return &status_table[i];
    return NULL;
}

MC_API const char *mc_status_name(mc_status status)
{
    const status_entry *e = find(status);
    return e ? e->name : "MC_E_UNKNOWN";
}

MC_API const char *mc_status_message(mc_status status)
{
    const status_entry *e = find(status);
    return e ? e->message : "unknown status";
}

MC_API uint32_t mc_version(void) { return 0x000100u; }
