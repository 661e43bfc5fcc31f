"""Microsoft Graph cloud-communications: models, client, errors and token providers.

Nothing here imports the media layer.
"""
